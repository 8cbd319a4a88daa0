//! Zab over gRPC: the streams between a leader and its learners, and nothing else. The
//! caller's runtime owns the [`Zab`](crate::Zab) core; [`Quorum`] only carries its
//! messages and reports streams opening and breaking, as [`Event`]s.
//!
//! A learner dials the leader's quorum port ([`Quorum::connect`]) and opens one
//! bidirectional `Learn` stream whose first frame names it; both directions then carry
//! [`Message`]s in order. A new stream from a sid replaces the old one. Each stream has a
//! bounded send queue: a peer that does not keep up is cut off (the core re-syncs it)
//! rather than let memory grow. Snapshot pieces are counted apart, until the stream takes
//! them (hands them to HTTP/2, whose flow control waits for the peer's reading): a sender
//! asks [`Quorum::snapshot_room`] before it makes the next, and hears [`Event::Room`] once
//! the stream has taken enough, so a link that carries them slowly holds a leader's memory
//! to about [`QuorumConfig::snapshot_window`] (plus what the sender makes between two
//! asks) rather than to the snapshot's size. Frames over
//! [`QuorumConfig::max_frame_bytes`] are refused by tonic on both sides, and a frame that
//! does not decode to a message breaks its stream with one log line; the others go on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status as GrpcStatus, Streaming};
use tracing::{debug, info, warn};
use zk_election::peer_tls::{self, PeerTls};
use zk_jute::Zxid;

use crate::config::Membership;
use crate::message::{Entry, Message, Sid, Touch};

/// The generated protobuf types and tonic client and server of
/// `proto/replication.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("zk.replication.v1");
}

use proto::frame::Body;
use proto::quorum_client::QuorumClient;
use proto::quorum_server::{Quorum as QuorumService, QuorumServer};
use proto::{Frame, Hello};

/// What happened on the streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A stream asked for with [`Quorum::connect`] is open.
    Connected {
        /// The leader.
        peer: Sid,
    },
    /// A stream closed, broke, or could not be opened.
    Disconnected {
        /// The peer.
        peer: Sid,
    },
    /// A message arrived.
    Received {
        /// The sender.
        from: Sid,
        /// The message.
        message: Message,
    },
    /// The stream to `peer` took enough of the snapshot pieces queued for it that
    /// [`Quorum::snapshot_room`] is true again (room also comes back, untold, when the
    /// stream is replaced or closed: a send then goes to the new one or fails).
    Room {
        /// The peer.
        peer: Sid,
    },
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame without a body.
    #[error("empty frame")]
    Empty,
    /// A hello after the first frame.
    #[error("hello in the middle of a stream")]
    LateHello,
    /// A field the message needs is absent.
    #[error("frame without its {0}")]
    Missing(&'static str),
}

/// Why sending failed: the peer has no stream, or its queue was full (the stream is
/// then closed). Feed the core [`Input::Disconnected`](crate::Input::Disconnected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no stream to server {0}")]
pub struct LinkDown(pub Sid);

/// How the quorum port runs.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This member's id.
    pub sid: Sid,
    /// Where to listen for learners.
    pub listen: SocketAddr,
    /// The largest frame accepted or sent, in bytes.
    pub max_frame_bytes: usize,
    /// Messages queued per stream before the peer counts as not keeping up.
    pub send_queue_len: usize,
    /// Bytes of snapshot pieces queued per stream before [`Quorum::snapshot_room`] says
    /// to wait (taken as 1 if 0).
    pub snapshot_window: usize,
    /// How long a learner's stream may take to open.
    pub connect_timeout_ms: u64,
    /// Mutual TLS with the peers, and who may speak for which server id; `None` for
    /// plaintext.
    pub tls: Option<PeerTls>,
}

impl QuorumConfig {
    /// Defaults: 4 MiB frames, 65,536 queued messages per stream, 8 MiB of snapshot
    /// pieces per stream, 2 s to connect.
    pub fn new(sid: Sid, listen: SocketAddr) -> Self {
        QuorumConfig {
            sid,
            listen,
            max_frame_bytes: 4 * 1024 * 1024,
            send_queue_len: 65_536,
            snapshot_window: 8 * 1024 * 1024,
            connect_timeout_ms: 2_000,
            tls: None,
        }
    }
}

/// One open stream's sending half.
#[derive(Debug)]
struct Link {
    generation: u64,
    tx: mpsc::Sender<Frame>,
    cancel: CancellationToken,
    /// Bytes of snapshot pieces queued and not yet taken by the stream.
    snapshot_queued: Arc<AtomicUsize>,
}

/// What the stream of one link tells as it takes snapshot pieces.
#[derive(Debug)]
struct Taken {
    peer: Sid,
    queued: Arc<AtomicUsize>,
    window: usize,
    events: mpsc::Sender<Event>,
}

impl Taken {
    /// The stream took `frame`: a snapshot piece that brings the queue under the window
    /// is told as [`Event::Room`] (dropped if the events are full: whoever reads them
    /// then has plenty to wake it, and asks [`Quorum::snapshot_room`] again).
    fn took(&self, frame: &Frame) {
        let Some(Body::SnapPiece(piece)) = &frame.body else {
            return;
        };
        let len = piece.data.len();
        let before = self.queued.fetch_sub(len, Ordering::AcqRel);
        if before >= self.window && before - len < self.window {
            let _ = self.events.try_send(Event::Room { peer: self.peer });
        }
    }
}

#[derive(Debug, Default)]
struct Links {
    by_sid: BTreeMap<Sid, Link>,
    next_generation: u64,
}

fn lock(links: &Mutex<Links>) -> MutexGuard<'_, Links> {
    links
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, Clone)]
struct Shared {
    sid: Sid,
    config: Arc<QuorumConfig>,
    links: Arc<Mutex<Links>>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
}

impl Shared {
    /// Registers a new stream to `peer`, replacing (and closing) any older one.
    fn register(&self, peer: Sid, tx: mpsc::Sender<Frame>) -> (u64, CancellationToken, Taken) {
        let mut links = lock(&self.links);
        links.next_generation += 1;
        let generation = links.next_generation;
        let cancel = self.cancel.child_token();
        let queued = Arc::new(AtomicUsize::new(0));
        if let Some(old) = links.by_sid.insert(
            peer,
            Link {
                generation,
                tx,
                cancel: cancel.clone(),
                snapshot_queued: queued.clone(),
            },
        ) {
            old.cancel.cancel();
        }
        let taken = Taken {
            peer,
            queued,
            window: self.config.snapshot_window.max(1),
            events: self.events.clone(),
        };
        (generation, cancel, taken)
    }

    /// Forgets the stream `generation` to `peer` if it is still the current one;
    /// returns whether it was.
    fn unregister(&self, peer: Sid, generation: u64) -> bool {
        let mut links = lock(&self.links);
        if links.by_sid.get(&peer).map(|l| l.generation) == Some(generation) {
            if let Some(link) = links.by_sid.remove(&peer) {
                link.cancel.cancel();
            }
            return true;
        }
        false
    }

    /// Reads `incoming` until it ends, breaks or carries a bad frame, then reports the
    /// stream gone (if a newer one has not replaced it).
    async fn pump(
        self,
        peer: Sid,
        generation: u64,
        mut incoming: Streaming<Frame>,
        cancel: CancellationToken,
    ) {
        loop {
            let next = tokio::select! {
                next = incoming.message() => next,
                () = cancel.cancelled() => break,
            };
            match next {
                Ok(Some(frame)) => match from_frame(frame) {
                    Ok(message) => {
                        let event = Event::Received {
                            from: peer,
                            message,
                        };
                        if self.events.send(event).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        warn!(sid = self.sid, peer, %error, "bad frame: closing the stream");
                        break;
                    }
                },
                Ok(None) => break,
                Err(status) => {
                    debug!(sid = self.sid, peer, %status, "stream broke");
                    break;
                }
            }
        }
        if self.unregister(peer, generation) {
            let _ = self.events.send(Event::Disconnected { peer }).await;
        }
    }
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, GrpcStatus>> + Send>>;

/// The frames of `rx` until it closes or `cancel` fires.
fn outgoing(
    rx: mpsc::Receiver<Frame>,
    cancel: CancellationToken,
    taken: Taken,
) -> impl Stream<Item = Frame> + Send {
    futures_util::stream::unfold((rx, cancel, taken), |(mut rx, cancel, taken)| async move {
        let next = tokio::select! {
            next = rx.recv() => next,
            () = cancel.cancelled() => None,
        };
        next.map(|frame| {
            taken.took(&frame);
            (frame, (rx, cancel, taken))
        })
    })
}

#[tonic::async_trait]
impl QuorumService for Shared {
    type LearnStream = FrameStream;

    async fn learn(
        &self,
        request: Request<Streaming<Frame>>,
    ) -> Result<Response<FrameStream>, GrpcStatus> {
        let extensions = request.extensions().clone();
        let mut incoming = request.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(5), incoming.message())
            .await
            .map_err(|_| GrpcStatus::deadline_exceeded("no hello"))??;
        let Some(Frame {
            body: Some(Body::Hello(Hello { sid: from })),
        }) = first
        else {
            return Err(GrpcStatus::invalid_argument(
                "the first frame must be a hello",
            ));
        };
        if let Err(why) = peer_tls::authorize(self.config.tls.as_ref(), from, &extensions) {
            warn!(sid = self.sid, learner = from, %why, "learner refused: its certificate does not prove its server id");
            return Err(GrpcStatus::permission_denied(why));
        }
        let (tx, rx) = mpsc::channel(self.config.send_queue_len.max(1));
        let (generation, cancel, taken) = self.register(from, tx);
        info!(sid = self.sid, learner = from, "learner stream opened");
        tokio::spawn(
            self.clone()
                .pump(from, generation, incoming, cancel.clone()),
        );
        let out = futures_util::StreamExt::map(outgoing(rx, cancel, taken), Ok);
        Ok(Response::new(Box::pin(out)))
    }
}

/// A member's quorum port: the listener for learners, and the streams it dialed as a
/// learner. Dropping it stops everything, as [`Quorum::shutdown`] does.
#[derive(Debug)]
pub struct Quorum {
    shared: Shared,
    local_addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl Quorum {
    /// Binds the listener. Events arrive on the returned receiver.
    pub async fn start(config: QuorumConfig) -> std::io::Result<(Quorum, mpsc::Receiver<Event>)> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let (events, events_rx) = mpsc::channel(4096);
        let shared = Shared {
            sid: config.sid,
            config: Arc::new(config),
            links: Arc::new(Mutex::new(Links::default())),
            events,
            cancel: CancellationToken::new(),
        };
        let service = QuorumServer::new(shared.clone())
            .max_decoding_message_size(shared.config.max_frame_bytes)
            .max_encoding_message_size(shared.config.max_frame_bytes);
        let incoming = peer_tls::incoming(
            listener,
            shared.config.tls.clone(),
            "quorum",
            shared.cancel.clone(),
        );
        let shutdown = shared.cancel.clone();
        let sid = shared.sid;
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let served = Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                warn!(sid, %error, "quorum listener failed");
            }
        });
        info!(sid, %local_addr, "quorum port open");
        Ok((
            Quorum {
                shared,
                local_addr,
                tasks,
            },
            events_rx,
        ))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Opens a stream to the leader `peer` at `addr` (`host:port`); reports
    /// [`Event::Connected`] or [`Event::Disconnected`].
    pub fn connect(&mut self, peer: Sid, addr: String) {
        let shared = self.shared.clone();
        self.tasks.spawn(async move {
            let events = shared.events.clone();
            if let Err(error) = dial(&shared, peer, &addr).await {
                debug!(sid = shared.sid, peer, %addr, %error, "could not open a stream");
                let _ = events.send(Event::Disconnected { peer }).await;
            }
        });
    }

    /// Queues `message` for `to`.
    pub fn send(&self, to: Sid, message: Message) -> Result<(), LinkDown> {
        let mut links = lock(&self.shared.links);
        let Some(link) = links.by_sid.get(&to) else {
            return Err(LinkDown(to));
        };
        if let Message::SnapPiece { data, .. } = &message {
            // Counted before the stream can take it.
            link.snapshot_queued.fetch_add(data.len(), Ordering::AcqRel);
        }
        if link.tx.try_send(to_frame(message)).is_err() {
            warn!(
                sid = self.shared.sid,
                peer = to,
                "peer not keeping up: stream closed"
            );
            if let Some(link) = links.by_sid.remove(&to) {
                link.cancel.cancel();
            }
            return Err(LinkDown(to));
        }
        Ok(())
    }

    /// Whether the stream to `to` holds fewer bytes of snapshot pieces than the
    /// [window](QuorumConfig::snapshot_window) (true with no stream: a send then fails).
    /// Once false, [`Event::Room`] tells when it is true again.
    pub fn snapshot_room(&self, to: Sid) -> bool {
        lock(&self.shared.links).by_sid.get(&to).is_none_or(|link| {
            link.snapshot_queued.load(Ordering::Acquire) < self.shared.config.snapshot_window.max(1)
        })
    }

    /// Closes the stream to `peer`, if any. No event is reported for it.
    pub fn disconnect(&self, peer: Sid) {
        if let Some(link) = lock(&self.shared.links).by_sid.remove(&peer) {
            link.cancel.cancel();
        }
    }

    /// Stops the listener and every stream.
    pub async fn shutdown(mut self) {
        self.shared.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for Quorum {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

async fn dial(
    shared: &Shared,
    peer: Sid,
    addr: &str,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let timeout = Duration::from_millis(shared.config.connect_timeout_ms);
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    let channel = peer_tls::channel(&endpoint, addr, shared.config.tls.as_ref()).await?;
    let mut client = QuorumClient::new(channel)
        .max_decoding_message_size(shared.config.max_frame_bytes)
        .max_encoding_message_size(shared.config.max_frame_bytes);
    let (tx, rx) = mpsc::channel(shared.config.send_queue_len.max(1));
    tx.try_send(Frame {
        body: Some(Body::Hello(Hello { sid: shared.sid })),
    })?;
    let (generation, cancel, taken) = shared.register(peer, tx);
    let opened =
        tokio::time::timeout(timeout, client.learn(outgoing(rx, cancel.clone(), taken))).await;
    let incoming = match opened {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) => {
            shared.unregister(peer, generation);
            return Err(status.into());
        }
        Err(elapsed) => {
            shared.unregister(peer, generation);
            return Err(elapsed.into());
        }
    };
    info!(
        sid = shared.sid,
        leader = peer,
        "stream to the leader opened"
    );
    if shared.events.send(Event::Connected { peer }).await.is_err() {
        return Ok(());
    }
    shared
        .clone()
        .pump(peer, generation, incoming, cancel)
        .await;
    Ok(())
}

fn zxid(z: Zxid) -> proto::Zxid {
    proto::Zxid { zxid: z.0 }
}

fn entry(e: Entry) -> proto::Entry {
    proto::Entry {
        zxid: e.zxid.0,
        data: e.data,
    }
}

fn membership(m: Membership) -> proto::Membership {
    proto::Membership {
        version: m.version,
        text: m.text,
    }
}

/// The frame carrying `message`.
pub fn to_frame(message: Message) -> Frame {
    use proto::*;
    let body = match message {
        Message::LearnerInfo {
            accepted_epoch,
            observer,
            election_epoch,
        } => Body::LearnerInfo(LearnerInfo {
            accepted_epoch,
            observer,
            election_epoch,
        }),
        Message::LeaderInfo { epoch } => Body::LeaderInfo(LeaderInfo { epoch }),
        Message::AckEpoch {
            current_epoch,
            last_zxid,
            snapshot_zxid,
            already_accepted,
        } => Body::AckEpoch(AckEpoch {
            current_epoch,
            last_zxid: last_zxid.0,
            snapshot_zxid: snapshot_zxid.0,
            already_accepted,
        }),
        Message::Diff { committed } => Body::Diff(Diff {
            committed: committed.0,
        }),
        Message::Trunc { zxid, committed } => Body::Trunc(Trunc {
            zxid: zxid.0,
            committed: committed.0,
        }),
        Message::Snap { zxid } => Body::Snap(Snap { zxid: zxid.0 }),
        Message::SnapPiece { data, last } => Body::SnapPiece(SnapPiece { data, last }),
        Message::Proposal(e) => Body::Proposal(entry(e)),
        Message::Ack { zxid: z } => Body::Ack(zxid(z)),
        Message::Commit { zxid: z } => Body::Commit(zxid(z)),
        Message::Logged { zxid: z } => Body::Logged(zxid(z)),
        Message::Inform(e) => Body::Inform(entry(e)),
        Message::Reconfig {
            entry: e,
            membership: m,
        } => Body::Reconfig(Reconfig {
            entry: Some(entry(e)),
            membership: Some(membership(m)),
        }),
        Message::CommitAndActivate { zxid, leader } => Body::CommitAndActivate(Activate {
            zxid: zxid.0,
            leader,
        }),
        Message::InformAndActivate {
            entry: e,
            membership: m,
            leader,
        } => Body::InformAndActivate(InformAndActivate {
            entry: Some(entry(e)),
            membership: Some(membership(m)),
            leader,
        }),
        Message::NewLeader {
            zxid: z,
            membership: m,
            pending,
        } => Body::NewLeader(NewLeader {
            zxid: z.0,
            membership: m.map(membership),
            pending,
        }),
        Message::AckNewLeader { zxid: z } => Body::AckNewLeader(zxid(z)),
        Message::UpToDate => Body::UpToDate(UpToDate {}),
        Message::Ping { touches } => Body::Ping(Ping {
            touches: touches
                .into_iter()
                .map(|t| proto::Touch {
                    session: t.session,
                    timeout_ms: t.timeout_ms,
                })
                .collect(),
        }),
        Message::Request { data } => Body::Request(proto::Bytes { data }),
        Message::Revalidate {
            session,
            timeout_ms,
        } => Body::Revalidate(Session {
            session,
            timeout_ms,
        }),
        Message::Revalidated { session, valid } => {
            Body::Revalidated(Revalidated { session, valid })
        }
        Message::Sync { id } => Body::Sync(Token { id }),
        Message::SyncDone { id } => Body::SyncDone(Token { id }),
    };
    Frame { body: Some(body) }
}

/// The message a frame carries.
pub fn from_frame(frame: Frame) -> Result<Message, FrameError> {
    let z = |p: proto::Zxid| Zxid(p.zxid);
    let e = |p: proto::Entry| Entry {
        zxid: Zxid(p.zxid),
        data: p.data,
    };
    let m = |p: proto::Membership| Membership {
        version: p.version,
        text: p.text,
    };
    Ok(match frame.body.ok_or(FrameError::Empty)? {
        Body::Hello(_) => return Err(FrameError::LateHello),
        Body::LearnerInfo(p) => Message::LearnerInfo {
            accepted_epoch: p.accepted_epoch,
            observer: p.observer,
            election_epoch: p.election_epoch,
        },
        Body::LeaderInfo(p) => Message::LeaderInfo { epoch: p.epoch },
        Body::AckEpoch(p) => Message::AckEpoch {
            current_epoch: p.current_epoch,
            last_zxid: Zxid(p.last_zxid),
            snapshot_zxid: Zxid(p.snapshot_zxid),
            already_accepted: p.already_accepted,
        },
        Body::Diff(p) => Message::Diff {
            committed: Zxid(p.committed),
        },
        Body::Trunc(p) => Message::Trunc {
            zxid: Zxid(p.zxid),
            committed: Zxid(p.committed),
        },
        Body::Snap(p) => Message::Snap { zxid: Zxid(p.zxid) },
        Body::SnapPiece(p) => Message::SnapPiece {
            data: p.data,
            last: p.last,
        },
        Body::Proposal(p) => Message::Proposal(e(p)),
        Body::Ack(p) => Message::Ack { zxid: z(p) },
        Body::Commit(p) => Message::Commit { zxid: z(p) },
        Body::Logged(p) => Message::Logged { zxid: z(p) },
        Body::Inform(p) => Message::Inform(e(p)),
        Body::Reconfig(p) => Message::Reconfig {
            entry: e(p.entry.ok_or(FrameError::Missing("entry"))?),
            membership: m(p.membership.ok_or(FrameError::Missing("membership"))?),
        },
        Body::CommitAndActivate(p) => Message::CommitAndActivate {
            zxid: Zxid(p.zxid),
            leader: p.leader,
        },
        Body::InformAndActivate(p) => Message::InformAndActivate {
            entry: e(p.entry.ok_or(FrameError::Missing("entry"))?),
            membership: m(p.membership.ok_or(FrameError::Missing("membership"))?),
            leader: p.leader,
        },
        Body::NewLeader(p) => Message::NewLeader {
            zxid: Zxid(p.zxid),
            membership: p.membership.map(m),
            pending: p.pending,
        },
        Body::AckNewLeader(p) => Message::AckNewLeader { zxid: z(p) },
        Body::UpToDate(_) => Message::UpToDate,
        Body::Ping(p) => Message::Ping {
            touches: p
                .touches
                .into_iter()
                .map(|t| Touch {
                    session: t.session,
                    timeout_ms: t.timeout_ms,
                })
                .collect(),
        },
        Body::Request(p) => Message::Request { data: p.data },
        Body::Revalidate(p) => Message::Revalidate {
            session: p.session,
            timeout_ms: p.timeout_ms,
        },
        Body::Revalidated(p) => Message::Revalidated {
            session: p.session,
            valid: p.valid,
        },
        Body::Sync(p) => Message::Sync { id: p.id },
        Body::SyncDone(p) => Message::SyncDone { id: p.id },
    })
}
