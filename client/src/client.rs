//! The [`Client`] handle and its operations.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use zk_jute::data::{Acl, ClientInfo, Stat};
use zk_jute::proto::{
    AddWatchRequest, CheckWatchesRequest, Create2Response, DeleteRequest, ExistsRequest,
    ExistsResponse, GetAclRequest, GetAclResponse, GetAllChildrenNumberRequest,
    GetAllChildrenNumberResponse, GetChildren2Request, GetChildren2Response, GetChildrenRequest,
    GetChildrenResponse, GetDataRequest, GetDataResponse, GetEphemeralsRequest,
    GetEphemeralsResponse, ReconfigRequest, RemoveWatchesRequest, SetAclRequest, SetAclResponse,
    SetDataRequest, SetDataResponse, SyncRequest, WhoAmIResponse,
};
use zk_jute::{
    AddWatchMode, MultiOp, MultiRequest, MultiResponse, OpCode, Reader, Record, WatcherType,
};
use zk_watch::Registration;

use crate::error::{Error, Result};
use crate::hosts::{ConnectString, HostList};
use crate::io::{Command, Io, IoConfig, Shared, Sink, WatchRequest};
use crate::multi::{
    Multi, MultiRead, OpResult, ReadResult, create_op, read_results, write_results,
};
use crate::path::{Chroot, validate_path};
use crate::types::{
    ClientOptions, CreateOptions, OneshotWatch, PersistentWatch, SessionState, StateEvents,
    WatchEvents,
};

/// A ZooKeeper session: a cheap, cloneable handle to the task that owns the connection.
///
/// Every operation sends its request when called (not when first polled) and returns a
/// future of the reply, so calls made one after another from one task are sent, and
/// answered, in that order: ZooKeeper's FIFO client order. Paths are relative to the
/// connect string's chroot, if any.
///
/// The session ends with [`close`](Self::close), when it expires, or when the last handle
/// is dropped (the session is then closed in the background).
#[derive(Clone)]
pub struct Client {
    cmds: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    chroot: Arc<Chroot>,
}

impl std::fmt::Debug for Client {
    /// The session id, state and chroot; never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("session_id", &format_args!("{:#x}", self.session_id()))
            .field("state", &self.state())
            .field("chroot", &self.chroot())
            .finish()
    }
}

/// A sent request's reply, still to come.
struct Reply {
    rx: oneshot::Receiver<Result<Bytes>>,
    shared: Arc<Shared>,
}

impl Reply {
    async fn body(self) -> Result<Bytes> {
        match self.rx.await {
            Ok(result) => result,
            Err(_) => Err(self.shared.terminal_error()),
        }
    }
}

/// Where the ensemble's configuration lives (`ZooDefs.CONFIG_NODE`).
const CONFIG_PATH: &str = "/zookeeper/config";

fn decode<R: Record>(body: Bytes) -> Result<R> {
    Ok(R::decode(&mut Reader::new(body))?)
}

fn version(version: Option<i32>) -> i32 {
    version.unwrap_or(-1)
}

impl Client {
    /// Connects to one of the servers of `connect_string` (`host:port,...[/chroot]`, tried
    /// in random order) and establishes a session; returns once it is established, or
    /// [`Error::ConnectTimeout`] after [`ClientOptions::connect_timeout`].
    ///
    /// Must be called within a tokio runtime: the connection task is spawned on it.
    pub async fn connect(connect_string: &str, options: ClientOptions) -> Result<Client> {
        let connect_timeout = options.connect_timeout;
        let client = Self::start(connect_string, options)?;
        let mut state = client.shared.state.subscribe();
        let settled = tokio::time::timeout(
            connect_timeout,
            // A connection lost right after the handshake is Disconnected, not a failure:
            // the session exists and the task reconnects.
            state.wait_for(|s| s.is_connected() || s.is_terminal()),
        )
        .await;
        match settled {
            Ok(Ok(s)) if s.is_connected() => Ok(client),
            Ok(_) => Err(client.shared.terminal_error()),
            // Dropping the only handle stops the task.
            Err(_) => Err(Error::ConnectTimeout),
        }
    }

    /// Like [`connect`](Self::connect), but returns at once, in state
    /// [`SessionState::Connecting`]: the client keeps trying the servers (with no
    /// deadline) while requests wait for the session, as ZooKeeper's own constructor
    /// does. Follow [`state_events`](Self::state_events) to learn when it is connected.
    ///
    /// Must be called within a tokio runtime: the connection task is spawned on it.
    pub fn start(connect_string: &str, options: ClientOptions) -> Result<Client> {
        let parsed = ConnectString::parse(connect_string)?;
        let chroot = Chroot::new(parsed.chroot);
        // The protocol carries the timeout as an i32 of milliseconds.
        let options = ClientOptions {
            session_timeout: options
                .session_timeout
                .min(Duration::from_millis(i32::MAX as u64)),
            ..options
        };
        let shared = Arc::new(Shared::new(options.session_timeout));
        let (cmds, rx) = mpsc::unbounded_channel();
        let config = IoConfig {
            session_timeout: options.session_timeout,
            reconnect_delay: options.reconnect_delay,
            read_only: options.read_only,
            max_packet_len: options.max_packet_len,
            tls: options.tls.clone(),
            sasl: options.sasl.clone(),
        };
        let session = options
            .session
            .map(|(id, password)| (id, Bytes::from(password)));
        let auths = options
            .auth
            .into_iter()
            .map(|(scheme, auth)| (scheme, Bytes::from(auth)))
            .collect();
        let io = Io::new(
            shared.clone(),
            rx,
            config,
            HostList::new(parsed.hosts),
            chroot.clone(),
            session,
            auths,
        );
        tokio::spawn(io.run());
        Ok(Client {
            cmds,
            shared,
            chroot: Arc::new(chroot),
        })
    }

    /// The session id (0 before the first connection).
    pub fn session_id(&self) -> i64 {
        self.shared.session().id
    }

    /// The session password, to resume the session from another client
    /// ([`ClientOptions::session`]).
    pub fn session_password(&self) -> Vec<u8> {
        self.shared.session().password.to_vec()
    }

    /// The session timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.shared.session().timeout
    }

    /// The zxid of the last reply that carried one (`lastZxidSeen`).
    pub fn last_zxid(&self) -> i64 {
        self.shared.session().last_zxid
    }

    /// The chroot of the connect string, if any.
    pub fn chroot(&self) -> Option<&str> {
        self.chroot.as_deref()
    }

    /// The session's state now.
    pub fn state(&self) -> SessionState {
        *self.shared.state.borrow()
    }

    /// The session's state changes from now on, as a stream.
    pub fn state_events(&self) -> StateEvents {
        StateEvents::new(self.shared.events.subscribe())
    }

    /// Every node event the client's watches hear from now on, once each (an event that
    /// fires several watches is here once), in the order the server sent them, interleaved
    /// across watches as they came: the events of one-shot and persistent watches and the
    /// `*WatchRemoved` events of [`remove_watches`](Self::remove_watches), each that reached
    /// a watch still held (a dropped watch's are not here). An event is here before the
    /// reply the server sent after it resolves. No session event: the stream ends with the
    /// session, whose state changes are in [`state_events`](Self::state_events) (and, among
    /// these events, in [`events`](Self::events)). The watches themselves still deliver
    /// their events; this is a second view for readers that need the order, as a shell
    /// printing every event does.
    pub fn watch_events(&self) -> WatchEvents {
        self.event_reader(false)
    }

    /// What the Java client's default watcher hears, in the order it would: the session's
    /// state changes (events of type [`EventType::None`](crate::EventType::None):
    /// `SyncConnected`, `Disconnected`, `ConnectedReadOnly`, then `Expired`, `AuthFailed`
    /// or `Closed`) among the node events of [`watch_events`](Self::watch_events). It
    /// starts with the state at the call, unless the client is still connecting, and ends
    /// after the session's last state. So after a reconnection, `SyncConnected` comes
    /// before the events of the watches set again on the new connection, as a shell that
    /// prints every event must show them.
    pub fn events(&self) -> WatchEvents {
        self.event_reader(true)
    }

    fn event_reader(&self, states: bool) -> WatchEvents {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // Under the readers' lock, the state does not change (see `Shared::set_state`).
        let mut readers = self.shared.watch_readers();
        let state = self.state();
        // Once the session is over its events are too: the stream ends at once.
        if !state.is_terminal() {
            if states && state != SessionState::Connecting {
                let _ = tx.send(crate::types::WatchedEvent::session(state.keeper_state()));
            }
            readers.push(crate::io::EventReader { tx, states });
        }
        WatchEvents { rx }
    }

    /// A `tokio::sync::watch` view of the state, for waiting on a particular one.
    pub fn state_watch(&self) -> tokio::sync::watch::Receiver<SessionState> {
        self.shared.state.subscribe()
    }

    fn command(&self, cmd: Command) {
        // If the task is gone the command is dropped with its reply sender, and the
        // caller reads the terminal state instead.
        let _ = self.cmds.send(cmd);
    }

    fn send(&self, op: OpCode, body: Bytes, watch: Option<WatchRequest>) -> Reply {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Request {
            op,
            body,
            watch,
            reply,
        });
        Reply {
            rx,
            shared: self.shared.clone(),
        }
    }

    /// Validates `path`, then sends `make(server path)`.
    fn send_path<R: Record>(
        &self,
        op: OpCode,
        path: &str,
        make: impl FnOnce(String) -> R,
        watch: Option<WatchRequest>,
    ) -> Result<Reply> {
        validate_path(path)?;
        let body = zk_jute::to_bytes(&make(self.chroot.to_server(path)));
        Ok(self.send(op, body, watch))
    }

    fn one_shot(registration: Registration, path: &str) -> (WatchRequest, OneshotWatch) {
        let (tx, rx) = oneshot::channel();
        let request = WatchRequest {
            registration,
            path: path.to_owned(),
            sink: Sink::Once(tx),
        };
        (request, OneshotWatch { rx })
    }

    /// Creates a znode; returns its path (with the sequence suffix for sequential modes)
    /// and its stat. Containers and TTL znodes use their own opcodes; every create is
    /// answered with a stat (`create2`).
    pub fn create(
        &self,
        path: &str,
        data: &[u8],
        options: &CreateOptions,
    ) -> impl Future<Output = Result<(String, Stat)>> + Send + use<> {
        let sent =
            create_op(&self.chroot, path, Bytes::copy_from_slice(data), options).and_then(|op| {
                let (code, body) = match &op {
                    MultiOp::CreateTtl(r) => (OpCode::CreateTtl, zk_jute::to_bytes(r)),
                    MultiOp::CreateContainer(r) => (OpCode::CreateContainer, zk_jute::to_bytes(r)),
                    MultiOp::Create(r) | MultiOp::Create2(r) => {
                        (OpCode::Create2, zk_jute::to_bytes(r))
                    }
                    _ => return Err(Error::Protocol("not a create".into())),
                };
                Ok(self.send(code, body, None))
            });
        let chroot = self.chroot.clone();
        async move {
            let response: Create2Response = decode(sent?.body().await?)?;
            Ok((chroot.to_client(&response.path), response.stat))
        }
    }

    /// Deletes a znode if its version is `version` (any version for `None`).
    pub fn delete(
        &self,
        path: &str,
        version: Option<i32>,
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        let sent = validate_path(path).map(|()| {
            // As ZooKeeper's client: `/` stays `/` under a chroot (the root is never
            // deleted, whatever the chroot).
            let server_path = if path == "/" {
                path.to_owned()
            } else {
                self.chroot.to_server(path)
            };
            let request = DeleteRequest {
                path: server_path,
                version: self::version(version),
            };
            self.send(OpCode::Delete, zk_jute::to_bytes(&request), None)
        });
        async move {
            sent?.body().await?;
            Ok(())
        }
    }

    /// The znode's stat, or `None` if it does not exist.
    pub fn exists(&self, path: &str) -> impl Future<Output = Result<Option<Stat>>> + Send + use<> {
        let sent = self.send_path(
            OpCode::Exists,
            path,
            |path| ExistsRequest { path, watch: false },
            None,
        );
        async move { exists_result(sent?.body().await) }
    }

    /// Like [`exists`](Self::exists), leaving a watch: it fires on the znode's creation
    /// if it does not exist, else on its data change or deletion.
    pub fn exists_w(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Option<Stat>, OneshotWatch)>> + Send + use<> {
        let (watch, future) = Self::one_shot(Registration::Exists, path);
        let sent = self.send_path(
            OpCode::Exists,
            path,
            |path| ExistsRequest { path, watch: true },
            Some(watch),
        );
        async move { Ok((exists_result(sent?.body().await)?, future)) }
    }

    /// The znode's data (empty for null data) and stat.
    pub fn get_data(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + use<> {
        let nullable = self.get_data_nullable(path);
        async move {
            nullable
                .await
                .map(|(data, stat)| (data.unwrap_or_default(), stat))
        }
    }

    /// Like [`get_data`](Self::get_data), telling null data (`None`: created without any,
    /// see [`CreateOptions::null_data`]) from empty data.
    pub fn get_data_nullable(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Option<Bytes>, Stat)>> + Send + use<> {
        let sent = self.send_path(
            OpCode::GetData,
            path,
            |path| GetDataRequest { path, watch: false },
            None,
        );
        async move {
            let r: GetDataResponse = decode(sent?.body().await?)?;
            Ok((r.data, r.stat))
        }
    }

    /// Like [`get_data`](Self::get_data), leaving a watch that fires on the znode's next
    /// data change or deletion.
    pub fn get_data_w(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Bytes, Stat, OneshotWatch)>> + Send + use<> {
        let nullable = self.get_data_nullable_w(path);
        async move {
            let (data, stat, watch) = nullable.await?;
            Ok((data.unwrap_or_default(), stat, watch))
        }
    }

    /// Like [`get_data_w`](Self::get_data_w), telling null data from empty data (as
    /// [`get_data_nullable`](Self::get_data_nullable)).
    pub fn get_data_nullable_w(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Option<Bytes>, Stat, OneshotWatch)>> + Send + use<> {
        let (watch, future) = Self::one_shot(Registration::GetData, path);
        let sent = self.send_path(
            OpCode::GetData,
            path,
            |path| GetDataRequest { path, watch: true },
            Some(watch),
        );
        async move {
            let r: GetDataResponse = decode(sent?.body().await?)?;
            Ok((r.data, r.stat, future))
        }
    }

    /// Writes the znode's data if its version is `version` (any version for `None`);
    /// returns its new stat.
    pub fn set_data(
        &self,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> impl Future<Output = Result<Stat>> + Send + use<> {
        let data = Some(Bytes::copy_from_slice(data));
        let sent = self.send_path(
            OpCode::SetData,
            path,
            |path| SetDataRequest {
                path,
                data,
                version: self::version(version),
            },
            None,
        );
        async move {
            let r: SetDataResponse = decode(sent?.body().await?)?;
            Ok(r.stat)
        }
    }

    /// The names of the znode's children, in the server's order (unsorted).
    pub fn get_children(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send + use<> {
        let sent = self.send_path(
            OpCode::GetChildren,
            path,
            |path| GetChildrenRequest { path, watch: false },
            None,
        );
        async move {
            let r: GetChildrenResponse = decode(sent?.body().await?)?;
            Ok(r.children.unwrap_or_default())
        }
    }

    /// Like [`get_children`](Self::get_children), leaving a watch that fires when a child
    /// is created or deleted, or the znode is deleted.
    pub fn get_children_w(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, OneshotWatch)>> + Send + use<> {
        let (watch, future) = Self::one_shot(Registration::GetChildren, path);
        let sent = self.send_path(
            OpCode::GetChildren,
            path,
            |path| GetChildrenRequest { path, watch: true },
            Some(watch),
        );
        async move {
            let r: GetChildrenResponse = decode(sent?.body().await?)?;
            Ok((r.children.unwrap_or_default(), future))
        }
    }

    /// The znode's children and its stat (`getChildren2`).
    pub fn get_children_with_stat(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, Stat)>> + Send + use<> {
        let sent = self.send_path(
            OpCode::GetChildren2,
            path,
            |path| GetChildren2Request { path, watch: false },
            None,
        );
        async move {
            let r: GetChildren2Response = decode(sent?.body().await?)?;
            Ok((r.children.unwrap_or_default(), r.stat))
        }
    }

    /// Like [`get_children_with_stat`](Self::get_children_with_stat), leaving a child
    /// watch.
    pub fn get_children_with_stat_w(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, Stat, OneshotWatch)>> + Send + use<> {
        let (watch, future) = Self::one_shot(Registration::GetChildren, path);
        let sent = self.send_path(
            OpCode::GetChildren2,
            path,
            |path| GetChildren2Request { path, watch: true },
            Some(watch),
        );
        async move {
            let r: GetChildren2Response = decode(sent?.body().await?)?;
            Ok((r.children.unwrap_or_default(), r.stat, future))
        }
    }

    /// The number of the znode's descendants (not counting itself).
    pub fn get_all_children_number(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<i32>> + Send + use<> {
        let sent = self.send_path(
            OpCode::GetAllChildrenNumber,
            path,
            |path| GetAllChildrenNumberRequest { path },
            None,
        );
        async move {
            let r: GetAllChildrenNumberResponse = decode(sent?.body().await?)?;
            Ok(r.total_number)
        }
    }

    /// The znode's ACL and stat.
    pub fn get_acl(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<Acl>, Stat)>> + Send + use<> {
        let sent = self.send_path(OpCode::GetAcl, path, |path| GetAclRequest { path }, None);
        async move {
            let r: GetAclResponse = decode(sent?.body().await?)?;
            Ok((r.acl.unwrap_or_default(), r.stat))
        }
    }

    /// Replaces the znode's ACL if its ACL version is `version` (any for `None`); returns
    /// its new stat. An empty ACL is refused here with [`Error::InvalidAcl`].
    pub fn set_acl(
        &self,
        path: &str,
        acl: &[Acl],
        version: Option<i32>,
    ) -> impl Future<Output = Result<Stat>> + Send + use<> {
        let sent = if acl.is_empty() {
            Err(Error::InvalidAcl)
        } else {
            self.send_path(
                OpCode::SetAcl,
                path,
                |path| SetAclRequest {
                    path,
                    acl: Some(acl.to_vec()),
                    version: self::version(version),
                },
                None,
            )
        };
        async move {
            let r: SetAclResponse = decode(sent?.body().await?)?;
            Ok(r.stat)
        }
    }

    /// Waits until the server this client is connected to has every write the leader had
    /// committed when the sync arrived.
    pub fn sync(&self, path: &str) -> impl Future<Output = Result<()>> + Send + use<> {
        let sent = self.send_path(OpCode::Sync, path, |path| SyncRequest { path }, None);
        async move {
            sent?.body().await?;
            Ok(())
        }
    }

    /// Runs the writes of `ops` as one transaction: every op's result, or
    /// [`Error::MultiFailed`] naming the first op that failed (then nothing was applied).
    pub fn multi(&self, ops: &Multi) -> impl Future<Output = Result<Vec<OpResult>>> + Send + use<> {
        let sent = ops.to_wire(&self.chroot).map(|ops| {
            self.send(
                OpCode::Multi,
                zk_jute::to_bytes(&MultiRequest { ops }),
                None,
            )
        });
        let chroot = self.chroot.clone();
        async move {
            let r: MultiResponse = decode(sent?.body().await?)?;
            write_results(r.results, &chroot)
        }
    }

    /// Runs the reads of `ops` together (`multiRead`); each has its own result.
    pub fn multi_read(
        &self,
        ops: &MultiRead,
    ) -> impl Future<Output = Result<Vec<Result<ReadResult>>>> + Send + use<> {
        let sent = ops.to_wire(&self.chroot).map(|ops| {
            self.send(
                OpCode::MultiRead,
                zk_jute::to_bytes(&MultiRequest { ops }),
                None,
            )
        });
        async move {
            let r: MultiResponse = decode(sent?.body().await?)?;
            read_results(r.results)
        }
    }

    /// Adds a persistent watch on `path` (the znode need not exist): a stream of its
    /// events until [`remove_watches`](Self::remove_watches) with [`WatcherType::Any`]
    /// takes it out (or, on servers with ZooKeeper 3.9's removal types, zk-rs's included,
    /// [`WatcherType::Persistent`] or [`WatcherType::PersistentRecursive`]). In recursive
    /// mode it also gets every descendant's events except `NodeChildrenChanged`.
    pub fn add_watch(
        &self,
        path: &str,
        mode: AddWatchMode,
    ) -> impl Future<Output = Result<PersistentWatch>> + Send + use<> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watch = WatchRequest {
            registration: Registration::AddWatch(mode),
            path: path.to_owned(),
            sink: Sink::Stream(tx),
        };
        let sent = self.send_path(
            OpCode::AddWatch,
            path,
            |path| AddWatchRequest {
                path,
                mode: mode.code(),
            },
            Some(watch),
        );
        async move {
            sent?.body().await?;
            Ok(PersistentWatch { rx })
        }
    }

    fn watches(
        &self,
        op: OpCode,
        path: &str,
        kind: WatcherType,
        local: bool,
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        let (reply, rx) = oneshot::channel();
        let sent = validate_path(path).map(|()| {
            let server_path = self.chroot.to_server(path);
            let body = if op == OpCode::RemoveWatches {
                zk_jute::to_bytes(&RemoveWatchesRequest {
                    path: server_path,
                    r#type: kind.code(),
                })
            } else {
                zk_jute::to_bytes(&CheckWatchesRequest {
                    path: server_path,
                    r#type: kind.code(),
                })
            };
            self.command(Command::Watches {
                op,
                path: path.to_owned(),
                kind,
                local,
                body,
                reply,
            });
        });
        let shared = self.shared.clone();
        async move {
            sent?;
            match rx.await {
                Ok(result) => result,
                Err(_) => Err(shared.terminal_error()),
            }
        }
    }

    /// Removes every watch this client holds on `path` of `kind` (`Children`: child
    /// watches; `Data`: data and exists watches; `Any`: those and persistent ones), on the
    /// server and here; each removed watch gets its `*WatchRemoved` event. Fails with
    /// [`Error::NoWatcher`] without asking the server if there is none here. With `local`,
    /// the local watches go even when the server cannot be asked (disconnected).
    pub fn remove_watches(
        &self,
        path: &str,
        kind: WatcherType,
        local: bool,
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        self.watches(OpCode::RemoveWatches, path, kind, local)
    }

    /// Checks that the server holds a watch of `kind` on `path` for this client
    /// (`checkWatches`); [`Error::NoWatcher`] if not (without asking, if none is here).
    pub fn check_watches(
        &self,
        path: &str,
        kind: WatcherType,
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        self.watches(OpCode::CheckWatches, path, kind, false)
    }

    /// The session's ephemeral znodes whose path starts with `prefix` (`/` for all).
    /// Under a chroot, the prefix is taken within it and only znodes inside it are listed,
    /// relative to it (ZooKeeper's own client ignores the chroot here).
    pub fn get_ephemerals(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send + use<> {
        let sent = self.send_path(
            OpCode::GetEphemerals,
            prefix,
            |prefix_path| GetEphemeralsRequest { prefix_path },
            None,
        );
        let chroot = self.chroot.clone();
        async move {
            let r: GetEphemeralsResponse = decode(sent?.body().await?)?;
            Ok(r.ephemerals
                .unwrap_or_default()
                .into_iter()
                .filter(|p| chroot.contains(p))
                .map(|p| chroot.to_client(&p))
                .collect())
        }
    }

    /// The ensemble's configuration: the data and stat of `/zookeeper/config`, read
    /// outside any chroot (`getConfig`). Empty for a standalone server.
    pub fn get_config(&self) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + use<> {
        let request = GetDataRequest {
            path: CONFIG_PATH.to_owned(),
            watch: false,
        };
        let sent = self.send(OpCode::GetData, zk_jute::to_bytes(&request), None);
        async move {
            let r: GetDataResponse = decode(sent.body().await?)?;
            Ok((r.data.unwrap_or_default(), r.stat))
        }
    }

    /// Changes the ensemble's membership (`reconfig`): servers to add (`server.N=...`
    /// lines, comma separated) and ids to remove, or a whole new membership; applied only
    /// if the config's version is `from_config` (`-1`: any). Returns the new config's
    /// data and stat. Servers refuse it unless dynamic reconfiguration is enabled
    /// ([`Error::ReconfigDisabled`]).
    pub fn reconfig(
        &self,
        joining: Option<&str>,
        leaving: Option<&str>,
        new_members: Option<&str>,
        from_config: i64,
    ) -> impl Future<Output = Result<(Bytes, Stat)>> + Send + use<> {
        let request = ReconfigRequest {
            joining_servers: joining.map(str::to_owned),
            leaving_servers: leaving.map(str::to_owned),
            new_members: new_members.map(str::to_owned),
            cur_config_id: from_config,
        };
        let sent = self.send(OpCode::Reconfig, zk_jute::to_bytes(&request), None);
        async move {
            let r: GetDataResponse = decode(sent.body().await?)?;
            Ok((r.data.unwrap_or_default(), r.stat))
        }
    }

    /// The identities the session is authenticated as (`whoAmI`).
    pub fn who_am_i(&self) -> impl Future<Output = Result<Vec<ClientInfo>>> + Send + use<> {
        let sent = self.send(OpCode::WhoAmI, Bytes::new(), None);
        async move {
            let r: WhoAmIResponse = decode(sent.body().await?)?;
            Ok(r.client_info.unwrap_or_default())
        }
    }

    /// Adds an identity to the session (`addauth`), e.g. `("digest", b"user:password")`;
    /// it is sent again after every reconnect. A failure is terminal
    /// ([`Error::AuthFailed`]), as in ZooKeeper's client.
    pub fn add_auth(
        &self,
        scheme: &str,
        auth: &[u8],
    ) -> impl Future<Output = Result<()>> + Send + use<> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Auth {
            scheme: scheme.to_owned(),
            auth: Bytes::copy_from_slice(auth),
            reply,
        });
        let shared = self.shared.clone();
        async move {
            match rx.await {
                Ok(result) => result,
                Err(_) => Err(shared.terminal_error()),
            }
        }
    }

    /// Replaces the servers the client connects to (ZooKeeper's `updateServerList`,
    /// after a reconfiguration): the hosts of `connect_string` (its chroot is ignored).
    /// To spread the load evenly over the new list the client may move, by ZooKeeper's
    /// probabilistic rule: its connection then drops and the session goes on on a server
    /// of the new list (requests in flight fail with [`Error::ConnectionLoss`]). Returns
    /// whether it moves.
    pub async fn update_server_list(&self, connect_string: &str) -> Result<bool> {
        let parsed = ConnectString::parse(connect_string)?;
        let (reply, rx) = oneshot::channel();
        self.command(Command::UpdateServerList {
            hosts: parsed.hosts,
            reply,
        });
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Closes the session: its ephemeral znodes go, every watch gets a `Closed` event,
    /// and later calls fail with [`Error::Closed`]. Waits for the server's answer (or
    /// the connection's end).
    pub async fn close(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Close { reply });
        let _ = rx.await;
        Ok(())
    }
}

impl Client {
    /// `path` and every znode below it, breadth first (ZooKeeper's
    /// `ZKUtil.listSubTreeBFS`): parents before children. Each level's listings are
    /// pipelined.
    pub async fn list_subtree(&self, path: &str) -> Result<Vec<String>> {
        validate_path(path)?;
        let mut tree = vec![path.to_owned()];
        let mut level = vec![path.to_owned()];
        while !level.is_empty() {
            let listings: Vec<_> = level
                .iter()
                .map(|parent| (parent.clone(), self.get_children(parent)))
                .collect();
            let mut next = Vec::new();
            for (parent, listing) in listings {
                let children = match listing.await {
                    Ok(children) => children,
                    // Deleted meanwhile: nothing below it any more. (A missing `path` is
                    // an error, as in ZooKeeper.)
                    Err(Error::NoNode) if parent != path => continue,
                    Err(e) => return Err(e),
                };
                let prefix = if parent == "/" { "" } else { parent.as_str() };
                next.extend(children.iter().map(|child| format!("{prefix}/{child}")));
            }
            tree.extend(next.iter().cloned());
            level = next;
        }
        Ok(tree)
    }

    /// Deletes `path` and everything below it (`zkCli.sh deleteall`): the subtree is
    /// listed, then deleted children first, up to 1,000 deletes in flight. Znodes already gone are
    /// skipped; a znode created meanwhile makes it fail with [`Error::NotEmpty`]. `/`
    /// itself is never deleted, nor (without a chroot) the server's `/zookeeper` znodes.
    pub async fn delete_recursive(&self, path: &str) -> Result<()> {
        let tree = self.list_subtree(path).await?;
        let system = self.chroot.as_deref().is_none();
        let doomed: Vec<&String> = tree
            .iter()
            .rev()
            .filter(|p| p.as_str() != "/" && !(system && is_system(p)))
            .collect();
        for chunk in doomed.chunks(1_000) {
            let deletes: Vec<_> = chunk.iter().map(|p| self.delete(p, None)).collect();
            for delete in deletes {
                match delete.await {
                    Ok(()) | Err(Error::NoNode) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// The server's own znodes: `/zookeeper` and below.
fn is_system(path: &str) -> bool {
    path == "/zookeeper" || path.starts_with("/zookeeper/")
}

fn exists_result(body: Result<Bytes>) -> Result<Option<Stat>> {
    match body {
        Ok(body) => Ok(Some(decode::<ExistsResponse>(body)?.stat)),
        Err(Error::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}
