//! The election over gRPC: one task owns the [`Election`] core and feeds it what the
//! peer streams deliver; tonic carries [`Notification`]s between members.
//!
//! Connections follow ZooKeeper's rule: of each pair of members, the one with the higher
//! sid dials the lower and opens one long-lived bidirectional `Exchange` stream; the
//! lower refuses streams from lower sids, and a new stream from a sid replaces the old
//! one, so a pair has at most one connection. Dialers reconnect with exponential
//! backoff; a member that starts knocks at each higher sid (a stream it refuses), which
//! then dials it at once. Each peer has a small send queue that drops its oldest message
//! when full, so a peer that is down or slow never holds up the election with the others; on
//! (re)connection the last message sent is sent again, as ZooKeeper does. Frames larger
//! than [`NodeConfig::max_message_bytes`] are refused by tonic on both sides.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status as GrpcStatus, Streaming};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::core::{Election, Input, Output};
use crate::error::TransportError;
use crate::peer_tls::{self, PeerTls};
use crate::vote::{Notification, PeerData, ServerState, Sid, Vote};

/// The generated protobuf types and tonic client and server of `proto/election.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("zk.election.v1");
}

use proto::election_client::ElectionClient;
use proto::election_server::{Election as ElectionService, ElectionServer};
use proto::frame::Body;
use proto::{Frame, Hello};

/// How one member runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This member's id.
    pub sid: Sid,
    /// The ensemble; every member needs an `election_addr`.
    pub config: Config,
    /// This member's persisted history.
    pub data: PeerData,
    /// Where to listen; defaults to this member's `election_addr`.
    pub listen: Option<SocketAddr>,
    /// The largest frame accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// Messages kept per peer while it is slow or away; the oldest go first.
    pub send_queue_len: usize,
    /// First reconnection delay; it doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Largest reconnection delay.
    pub reconnect_max_ms: u64,
    /// Mutual TLS with the peers, and who may speak for which server id; `None` for
    /// plaintext.
    pub tls: Option<PeerTls>,
}

impl NodeConfig {
    /// Defaults: 1 KiB frames, 16 queued messages per peer, reconnecting after 20 ms
    /// doubling to 1 s.
    pub fn new(sid: Sid, config: Config, data: PeerData) -> Self {
        NodeConfig {
            sid,
            config,
            data,
            listen: None,
            max_message_bytes: 1024,
            send_queue_len: 16,
            reconnect_min_ms: 20,
            reconnect_max_ms: 1_000,
            tls: None,
        }
    }
}

/// What a member currently believes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Its state.
    pub state: ServerState,
    /// Its vote: the proposal while looking, the elected leader otherwise.
    pub vote: Vote,
    /// Its round.
    pub round: i64,
    /// How many rounds were asked for with [`Node::start_looking`] (or a [`Looker`])
    /// and started: a caller that asked for its `n`th round knows that a status with
    /// fewer is older than its request, whatever it says.
    pub looks: u64,
    /// The newest membership version a peer counts ([`Output::MembershipHeard`]).
    pub heard_version: i64,
}

enum Event {
    Receive(Sid, Notification),
    Disconnected(Sid, u64),
    StartLooking,
    SetData(PeerData),
    Reconfigure(Config),
}

/// A running member: its listener, its dialers and the task that owns the core.
/// Dropping it stops everything, as [`Node::shutdown`] does.
#[derive(Debug)]
pub struct Node {
    sid: Sid,
    local_addr: SocketAddr,
    status: watch::Receiver<Status>,
    events: mpsc::Sender<Event>,
    peers: Arc<Peers>,
    cancel: CancellationToken,
}

/// The peers a node talks to, shared by its tasks: their links, the membership, and
/// what it takes to dial one that joins.
#[derive(Debug)]
struct Peers {
    sid: Sid,
    /// This member's election address, told to peers in the hello.
    advertised: String,
    node: Arc<NodeConfig>,
    links: RwLock<BTreeMap<Sid, Arc<PeerLink>>>,
    config: RwLock<Config>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
    tasks: Mutex<JoinSet<()>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Peers {
    fn link(&self, sid: Sid) -> Option<Arc<PeerLink>> {
        read(&self.links).get(&sid).map(Arc::clone)
    }

    /// The link to `sid`, made if it is new; a new one at `addr` gets its dialer (a
    /// lower sid) or a knock (a higher one).
    fn add(self: &Arc<Self>, sid: Sid, addr: Option<String>) -> Arc<PeerLink> {
        let mut links = write(&self.links);
        if let Some(link) = links.get(&sid) {
            return Arc::clone(link);
        }
        let link = Arc::new(PeerLink::new(sid, self.node.send_queue_len.max(1)));
        links.insert(sid, Arc::clone(&link));
        drop(links);
        if let Some(addr) = addr {
            let mut tasks = lock(&self.tasks);
            if sid < self.sid {
                tasks.spawn(dial(Arc::clone(self), Arc::clone(&link), addr));
            } else {
                tasks.spawn(knock(Arc::clone(self), sid, addr));
            }
        }
        link
    }

    /// Makes `config` the membership: links (and dialers) for members that are new.
    fn reconfigure(self: &Arc<Self>, config: &Config) {
        *write(&self.config) = config.clone();
        for member in config.members.values().filter(|m| m.sid != self.sid) {
            if let Some(addr) = &member.election_addr {
                self.add(member.sid, Some(addr.clone()));
            }
        }
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Receive(sid, n) => write!(f, "Receive({sid}, {n:?})"),
            Event::Disconnected(sid, generation) => write!(f, "Disconnected({sid}, {generation})"),
            Event::StartLooking => f.write_str("StartLooking"),
            Event::SetData(d) => write!(f, "SetData({d:?})"),
            Event::Reconfigure(c) => write!(f, "Reconfigure({:?})", c.verifier.voters()),
        }
    }
}

/// Starts election rounds on a running [`Node`]; see [`Node::looker`].
#[derive(Debug, Clone)]
pub struct Looker {
    events: mpsc::Sender<Event>,
}

impl Looker {
    /// Sets the history to vote with, then starts a new round: [`Node::set_peer_data`]
    /// and [`Node::start_looking`] in one step.
    pub async fn look(&self, data: PeerData) {
        let _ = self.events.send(Event::SetData(data)).await;
        let _ = self.events.send(Event::StartLooking).await;
    }

    /// Makes `config` the ensemble's membership: [`Node::reconfigure`].
    pub async fn reconfigure(&self, config: Config) {
        let _ = self.events.send(Event::Reconfigure(config)).await;
    }
}

/// Per-peer outgoing queue and the generation of its current stream.
#[derive(Debug)]
struct PeerLink {
    sid: Sid,
    queue: Mutex<VecDeque<Notification>>,
    last_sent: Mutex<Option<Notification>>,
    ready: Notify,
    /// The peer, a lower sid, knocked: its dialer tries again now.
    wake: Notify,
    generation: AtomicU64,
    /// Whether a stream is up.
    up: AtomicBool,
    /// Whether a stream was up and has been lost since (and none replaced it).
    lost: AtomicBool,
    capacity: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PeerLink {
    /// The link to `sid`, down, with an empty queue of `capacity` messages.
    fn new(sid: Sid, capacity: usize) -> Self {
        PeerLink {
            sid,
            queue: Mutex::new(VecDeque::new()),
            last_sent: Mutex::new(None),
            ready: Notify::new(),
            wake: Notify::new(),
            generation: AtomicU64::new(0),
            up: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            capacity,
        }
    }

    fn push(&self, notification: Notification) {
        let mut queue = lock(&self.queue);
        if queue.len() >= self.capacity {
            queue.pop_front();
            debug!(peer = self.sid, "send queue full; oldest message dropped");
        }
        queue.push_back(notification);
        drop(queue);
        self.ready.notify_one();
    }

    /// Starts a new stream generation; the previous stream's writer stops. The link is
    /// up once the stream is accepted ([`PeerLink::accepted`]).
    fn next_generation(&self) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let mut queue = lock(&self.queue);
        if queue.is_empty() {
            if let Some(last) = *lock(&self.last_sent) {
                queue.push_back(last);
            }
        }
        drop(queue);
        self.ready.notify_one();
        generation
    }

    /// The stream of `generation` is accepted by both ends: the link is up, unless a
    /// later generation replaced it meanwhile.
    fn accepted(&self, generation: u64) {
        if self.current(generation) {
            self.lost.store(false, Ordering::SeqCst);
            self.up.store(true, Ordering::SeqCst);
        }
    }

    fn current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::SeqCst) == generation
    }

    fn pop(&self) -> Option<Notification> {
        let next = lock(&self.queue).pop_front();
        if next.is_some() {
            *lock(&self.last_sent) = next;
        }
        next
    }
}

/// The frames of one stream generation of `link`, ending when the generation is
/// replaced or the node stops.
fn outgoing(
    link: Arc<PeerLink>,
    generation: u64,
    cancel: CancellationToken,
    first: Option<Frame>,
) -> impl Stream<Item = Frame> + Send + 'static {
    futures_util::stream::unfold((link, first), move |(link, mut first)| {
        let cancel = cancel.clone();
        async move {
            if let Some(frame) = first.take() {
                return Some((frame, (link, None)));
            }
            loop {
                if cancel.is_cancelled() || !link.current(generation) {
                    return None;
                }
                if let Some(n) = link.pop() {
                    return Some((notification_frame(&n), (link, None)));
                }
                tokio::select! {
                    () = link.ready.notified() => {}
                    () = cancel.cancelled() => return None,
                    // A replaced generation may have taken the wake-up.
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    })
}

fn notification_frame(n: &Notification) -> Frame {
    Frame {
        body: Some(Body::Notification(proto::Notification {
            leader: n.vote.leader,
            zxid: n.vote.zxid,
            election_epoch: n.vote.election_epoch,
            peer_epoch: n.vote.peer_epoch,
            state: n.state.code(),
            config_version: n.config_version,
        })),
    }
}

/// The notification in a frame, or `None` (logged) for anything else.
fn frame_notification(from: Sid, frame: Frame) -> Option<Notification> {
    let Some(Body::Notification(n)) = frame.body else {
        warn!(peer = from, "unexpected frame dropped");
        return None;
    };
    let Some(state) = ServerState::from_code(n.state) else {
        warn!(
            peer = from,
            state = n.state,
            "notification with an unknown state dropped"
        );
        return None;
    };
    Some(Notification {
        vote: Vote {
            leader: n.leader,
            zxid: n.zxid,
            election_epoch: n.election_epoch,
            peer_epoch: n.peer_epoch,
        },
        state,
        config_version: n.config_version,
    })
}

/// Reads a peer's frames into the core until the stream ends, then reports the loss.
async fn pump(
    from: Sid,
    generation: u64,
    mut stream: Streaming<Frame>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            next = stream.message() => next,
            () = cancel.cancelled() => return,
        };
        match next {
            Ok(Some(frame)) => {
                if let Some(n) = frame_notification(from, frame) {
                    if events.send(Event::Receive(from, n)).await.is_err() {
                        return;
                    }
                }
            }
            Ok(None) => break,
            Err(status) => {
                debug!(peer = from, %status, "stream failed");
                break;
            }
        }
    }
    let _ = events.send(Event::Disconnected(from, generation)).await;
}

struct Service {
    sid: Sid,
    tls: Option<PeerTls>,
    peers: Arc<Peers>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, GrpcStatus>> + Send>>;

#[tonic::async_trait]
impl ElectionService for Service {
    type ExchangeStream = FrameStream;

    async fn exchange(
        &self,
        request: Request<Streaming<Frame>>,
    ) -> Result<Response<FrameStream>, GrpcStatus> {
        let extensions = request.extensions().clone();
        let mut incoming = request.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(5), incoming.message())
            .await
            .map_err(|_| GrpcStatus::deadline_exceeded("no hello"))??;
        let Some(Frame {
            body: Some(Body::Hello(Hello { sid: from, addr })),
        }) = first
        else {
            return Err(GrpcStatus::invalid_argument(
                "the first frame must be a hello",
            ));
        };
        let (member, dynamic) = {
            let config = read(&self.peers.config);
            (config.role(from).is_some(), config.reconfig_enabled)
        };
        if !member && !dynamic {
            warn!(sid = self.sid, from, "connection from a non-member refused");
            return Err(GrpcStatus::permission_denied("not a member"));
        }
        if from == self.sid {
            return Err(GrpcStatus::invalid_argument(
                "a hello with this member's own id",
            ));
        }
        if let Err(why) = peer_tls::authorize(self.tls.as_ref(), from, &extensions) {
            warn!(sid = self.sid, from, %why, "peer refused: its certificate does not prove its server id");
            return Err(GrpcStatus::permission_denied(why));
        }
        if from <= self.sid {
            // A lower sid knocking (see `knock`): dial it now rather than when the
            // reconnection backoff runs out. A server joining the ensemble is dialed at
            // the address its hello gives.
            match self.peers.link(from) {
                Some(link) => {
                    debug!(sid = self.sid, peer = from, "knocked: dialing it now");
                    link.wake.notify_one();
                }
                None if !addr.is_empty() => {
                    info!(sid = self.sid, peer = from, %addr, "a server outside the membership knocked: dialing it");
                    self.peers.add(from, Some(addr));
                }
                None => {}
            }
            return Err(GrpcStatus::failed_precondition(
                "the member with the higher sid dials the lower one",
            ));
        }
        let link = self.peers.add(from, None);
        let generation = link.next_generation();
        link.accepted(generation);
        info!(sid = self.sid, peer = from, generation, "peer connected");
        let events = self.events.clone();
        let cancel = self.cancel.clone();
        tokio::spawn(pump(from, generation, incoming, events, cancel.clone()));
        let out = outgoing(link, generation, cancel, None).map(Ok);
        Ok(Response::new(Box::pin(out)))
    }
}

/// Dials a lower-sid peer for as long as the node runs.
async fn dial(peers: Arc<Peers>, link: Arc<PeerLink>, addr: String) {
    let sid = peers.sid;
    let node = Arc::clone(&peers.node);
    let events = peers.events.clone();
    let cancel = peers.cancel.clone();
    let peer = link.sid;
    let mut backoff_ms = node.reconnect_min_ms;
    while !cancel.is_cancelled() {
        match Endpoint::from_shared(format!("http://{addr}")) {
            Ok(endpoint) => {
                let endpoint = endpoint
                    .connect_timeout(Duration::from_secs(1))
                    .tcp_nodelay(true);
                let connected = tokio::select! {
                    c = peer_tls::channel(&endpoint, &addr, node.tls.as_ref()) => c,
                    () = cancel.cancelled() => return,
                };
                match connected {
                    Ok(channel) => {
                        let mut client = ElectionClient::new(channel)
                            .max_decoding_message_size(node.max_message_bytes)
                            .max_encoding_message_size(node.max_message_bytes);
                        let generation = link.next_generation();
                        let hello = Frame {
                            body: Some(Body::Hello(Hello {
                                sid,
                                addr: peers.advertised.clone(),
                            })),
                        };
                        let out =
                            outgoing(Arc::clone(&link), generation, cancel.clone(), Some(hello));
                        let opened = tokio::select! {
                            r = client.exchange(out) => r,
                            () = cancel.cancelled() => return,
                        };
                        match opened {
                            Ok(response) => {
                                link.accepted(generation);
                                info!(sid, peer, generation, "connected to peer");
                                backoff_ms = node.reconnect_min_ms;
                                pump(
                                    peer,
                                    generation,
                                    response.into_inner(),
                                    events.clone(),
                                    cancel.clone(),
                                )
                                .await;
                            }
                            Err(status) => debug!(sid, peer, %status, "stream refused"),
                        }
                    }
                    Err(error) => debug!(sid, peer, %error, "connect failed"),
                }
            }
            Err(error) => {
                warn!(sid, peer, %error, "bad peer address");
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(backoff_ms)) => {
                backoff_ms = (backoff_ms * 2).min(node.reconnect_max_ms);
            }
            () = link.wake.notified() => backoff_ms = node.reconnect_min_ms,
            () = cancel.cancelled() => return,
        }
    }
}

/// Asks a higher-sid peer to dial this member now, as ZooKeeper's connection from a
/// lower sid makes the higher one connect back at once: a stream opened from the lower
/// side is refused, and wakes the peer's dialer, which would otherwise wait out its
/// reconnection backoff (up to `reconnect_max_ms`) after this member's restart.
async fn knock(peers: Arc<Peers>, peer: Sid, addr: String) {
    let sid = peers.sid;
    let node = Arc::clone(&peers.node);
    let cancel = peers.cancel.clone();
    let Ok(endpoint) = Endpoint::from_shared(format!("http://{addr}")) else {
        return;
    };
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true);
    let attempt = async {
        let channel = peer_tls::channel(&endpoint, &addr, node.tls.as_ref())
            .await
            .ok()?;
        let mut client = ElectionClient::new(channel)
            .max_decoding_message_size(node.max_message_bytes)
            .max_encoding_message_size(node.max_message_bytes);
        let hello = Frame {
            body: Some(Body::Hello(Hello {
                sid,
                addr: peers.advertised.clone(),
            })),
        };
        // Refused, as it must be: the knock is the attempt itself.
        let _ = client.exchange(futures_util::stream::iter([hello])).await;
        Some(())
    };
    tokio::select! {
        knocked = attempt => debug!(sid, peer, answered = knocked.is_some(), "knocked"),
        () = cancel.cancelled() => {}
    }
}

/// Owns the core: feeds it events and timer ticks, routes its outputs.
async fn run_core(
    mut election: Election,
    peers: Arc<Peers>,
    mut events: mpsc::Receiver<Event>,
    status: watch::Sender<Status>,
    cancel: CancellationToken,
) {
    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let mut outputs = election.handle(now_ms(), Input::StartLooking);
    let mut looks = 0u64;
    loop {
        let mut unreachable_leader = None;
        for output in outputs.drain(..) {
            match output {
                Output::Send { to, notification } => {
                    if let Some(link) = peers.link(to) {
                        link.push(notification);
                    }
                }
                Output::Decided(decision) => {
                    // Joined a leader (on notifications still in flight) whose stream is
                    // already gone: as a follower failing to reach it, look again.
                    let leader = decision.vote.leader;
                    let lost = peers
                        .link(leader)
                        .is_some_and(|l| l.lost.load(Ordering::SeqCst));
                    if decision.state != ServerState::Leading && lost {
                        unreachable_leader = Some(leader);
                    }
                }
                Output::Looking { .. } | Output::MembershipHeard { .. } => {}
            }
        }
        if let Some(leader) = unreachable_leader {
            info!(
                sid = election.sid(),
                leader, "the chosen leader is unreachable"
            );
            outputs = election.handle(now_ms(), Input::PeerDisconnected(leader));
            continue;
        }
        status.send_replace(Status {
            state: election.state(),
            vote: election.vote(),
            round: election.logical_clock(),
            looks,
            heard_version: election.heard_config_version(),
        });
        let deadline = election
            .next_deadline_ms()
            .map(|ms| start + Duration::from_millis(ms))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let input = tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep_until(deadline) => Input::Tick,
            event = events.recv() => match event {
                None => return,
                Some(Event::Receive(from, notification)) => Input::Receive { from, notification },
                Some(Event::Disconnected(sid, generation)) => {
                    // Only the loss of the current stream counts.
                    let Some(link) = peers.link(sid) else { continue };
                    if !link.current(generation) {
                        continue;
                    }
                    link.lost.store(true, Ordering::SeqCst);
                    link.up.store(false, Ordering::SeqCst);
                    Input::PeerDisconnected(sid)
                }
                Some(Event::StartLooking) => {
                    looks += 1;
                    Input::StartLooking
                }
                Some(Event::SetData(data)) => {
                    election.set_peer_data(data);
                    continue;
                }
                Some(Event::Reconfigure(config)) => {
                    peers.reconfigure(&config);
                    Input::Reconfigure(config)
                }
            },
        };
        outputs = election.handle(now_ms(), input);
    }
}

impl Node {
    /// Binds the listener, starts dialing the lower-sid peers and starts looking.
    pub async fn start(node: NodeConfig) -> Result<Node, TransportError> {
        let sid = node.sid;
        let me = node
            .config
            .members
            .get(&sid)
            .ok_or(TransportError::NotAMember(sid))?;
        let advertised = me.election_addr.clone().unwrap_or_default();
        let listen = match node.listen {
            Some(addr) => addr,
            None => {
                let text = me
                    .election_addr
                    .clone()
                    .ok_or(TransportError::NoAddress(sid))?;
                tokio::net::lookup_host(&text)
                    .await
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .ok_or(TransportError::BadAddress(text))?
            }
        };
        let election = Election::new(node.config.clone(), sid, node.data)?;
        for member in node.config.members.values().filter(|m| m.sid != sid) {
            if member.election_addr.is_none() {
                return Err(TransportError::NoAddress(member.sid));
            }
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| TransportError::Bind {
                addr: listen.to_string(),
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TransportError::Bind {
                addr: listen.to_string(),
                source,
            })?;
        let advertised = if advertised.is_empty() {
            local_addr.to_string()
        } else {
            advertised
        };
        let cancel = CancellationToken::new();
        let (events_tx, events_rx) = mpsc::channel(1024);
        let (status_tx, status_rx) = watch::channel(Status {
            state: election.state(),
            vote: election.vote(),
            round: election.logical_clock(),
            looks: 0,
            heard_version: election.heard_config_version(),
        });
        let config = node.config.clone();
        let node = Arc::new(node);
        let peers = Arc::new(Peers {
            sid,
            advertised,
            node: Arc::clone(&node),
            links: RwLock::new(BTreeMap::new()),
            config: RwLock::new(config.clone()),
            events: events_tx.clone(),
            cancel: cancel.clone(),
            tasks: Mutex::new(JoinSet::new()),
        });
        let service = Service {
            sid,
            tls: node.tls.clone(),
            peers: Arc::clone(&peers),
            events: events_tx.clone(),
            cancel: cancel.clone(),
        };
        let server = ElectionServer::new(service)
            .max_decoding_message_size(node.max_message_bytes)
            .max_encoding_message_size(node.max_message_bytes);
        let incoming = peer_tls::incoming(listener, node.tls.clone(), "election", cancel.clone());
        let shutdown = cancel.clone();
        lock(&peers.tasks).spawn(async move {
            let served = Server::builder()
                .add_service(server)
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                warn!(sid, %error, "election listener failed");
            }
        });
        // A link, and a dialer or a knock, for every other member.
        peers.reconfigure(&config);
        lock(&peers.tasks).spawn(run_core(
            election,
            Arc::clone(&peers),
            events_rx,
            status_tx,
            cancel.clone(),
        ));
        info!(sid, %local_addr, "election node started");
        Ok(Node {
            sid,
            local_addr,
            status: status_rx,
            events: events_tx,
            peers,
            cancel,
        })
    }

    /// This member's id.
    pub fn sid(&self) -> Sid {
        self.sid
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the member believes now.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// Whether a stream with member `sid` is up (as far as this member knows).
    pub fn peer_connected(&self, sid: Sid) -> bool {
        self.peers
            .link(sid)
            .is_some_and(|link| link.up.load(Ordering::SeqCst))
    }

    /// A receiver that sees every change of [`Node::status`].
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Waits until `done` holds for the status, or `timeout` passes.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl FnMut(&Status) -> bool,
    ) -> Option<Status> {
        let mut status = self.status.clone();
        let waited = tokio::time::timeout(timeout, status.wait_for(done)).await;
        match waited {
            Ok(Ok(s)) => Some(*s),
            _ => None,
        }
    }

    /// Starts a new election round (as the replication layer does when it loses its
    /// leader or its quorum).
    pub async fn start_looking(&self) {
        let _ = self.events.send(Event::StartLooking).await;
    }

    /// Updates the persisted history used from the next round on.
    pub async fn set_peer_data(&self, data: PeerData) {
        let _ = self.events.send(Event::SetData(data)).await;
    }

    /// Makes `config` the ensemble's membership (a reconfiguration committed): the
    /// election counts its voters from now on, and members new to it are dialed. Members
    /// that left keep their links; they are no longer sent notifications as voters.
    pub async fn reconfigure(&self, config: Config) {
        let _ = self.events.send(Event::Reconfigure(config)).await;
    }

    /// A handle that starts new rounds from any task, for a caller that keeps the node
    /// elsewhere (a server's serving task asks for a round from synchronous code).
    pub fn looker(&self) -> Looker {
        Looker {
            events: self.events.clone(),
        }
    }

    /// Stops listening, closes every stream (peers see the connection end) and stops
    /// the core.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let mut tasks = std::mem::take(&mut *lock(&self.peers.tasks));
        let stopping = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), stopping)
            .await
            .is_err()
        {
            tasks.abort_all();
        }
        info!(sid = self.sid, "election node stopped");
    }
}

impl Drop for Node {
    /// Stops everything at once: the tasks are aborted, not waited for (their shared
    /// state refers to them, so dropping it would not end them), and the listener's port
    /// is freed as soon as they are gone.
    fn drop(&mut self) {
        self.cancel.cancel();
        lock(&self.peers.tasks).abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(capacity: usize) -> PeerLink {
        PeerLink::new(2, capacity)
    }

    fn note(round: i64) -> Notification {
        Notification {
            vote: Vote {
                leader: 1,
                zxid: 0,
                election_epoch: round,
                peer_epoch: 0,
            },
            state: ServerState::Looking,
            config_version: 0,
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest_message() {
        let link = link(3);
        for round in 1..=5 {
            link.push(note(round));
        }
        let rounds: Vec<i64> = std::iter::from_fn(|| link.pop())
            .map(|n| n.vote.election_epoch)
            .collect();
        assert_eq!(rounds, vec![3, 4, 5]);
    }

    #[test]
    fn a_new_stream_resends_the_last_message_and_retires_the_old_one() {
        let link = link(3);
        link.push(note(1));
        assert_eq!(link.pop(), Some(note(1)));
        let first = link.next_generation();
        assert!(link.current(first));
        assert_eq!(link.pop(), Some(note(1)), "sent again on the new stream");
        let second = link.next_generation();
        assert!(!link.current(first));
        assert!(link.current(second));
    }

    #[test]
    fn a_link_is_up_only_once_its_current_stream_is_accepted() {
        let link = link(3);
        // A dial whose stream the peer refuses (or never answers): still down.
        let refused = link.next_generation();
        assert!(!link.up.load(Ordering::SeqCst));
        let replaced = link.next_generation();
        link.accepted(refused);
        assert!(
            !link.up.load(Ordering::SeqCst),
            "a stale acceptance counts for nothing"
        );
        link.accepted(replaced);
        assert!(link.up.load(Ordering::SeqCst));
    }

    #[test]
    fn frames_with_unknown_states_or_bodies_are_dropped() {
        let good = notification_frame(&note(4));
        assert_eq!(frame_notification(2, good), Some(note(4)));
        let bad_state = Frame {
            body: Some(Body::Notification(proto::Notification {
                state: 7,
                ..Default::default()
            })),
        };
        assert_eq!(frame_notification(2, bad_state), None);
        let hello = Frame {
            body: Some(Body::Hello(Hello {
                sid: 3,
                addr: String::new(),
            })),
        };
        assert_eq!(frame_notification(2, hello), None);
        assert_eq!(frame_notification(2, Frame { body: None }), None);
    }
}
