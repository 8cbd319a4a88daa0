//! Mutual TLS between members, and the proof of a peer's server id.
//!
//! With no [`PeerTls`], peers speak plaintext gRPC and a peer's server id is what its
//! first frame says, as in ZooKeeper without `sslQuorum` or quorum SASL. With one, every
//! connection between members is TLS in both directions: the listener requires a
//! certificate that its [`rustls::ServerConfig`] accepts, the dialer checks the
//! listener's certificate against the address it dialed, and before a peer's first frame
//! is believed, the [`PeerAuthority`] decides whether the certificate it proved may speak
//! for the server id that frame claims. A connection that fails any of these is refused
//! before it can deliver a vote or a txn, with one log line.
//!
//! The same plumbing serves this crate's election and `zk-replication`'s quorum streams:
//! [`incoming`] for a listener, [`channel`] for a dialer, [`authorize`] in a service.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};
use tracing::{debug, warn};

use crate::vote::Sid;

/// How long a peer has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connected peer proved: where it connects from and the certificate chain it
/// presented (empty on a plaintext connection).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's address.
    pub remote: Option<SocketAddr>,
    /// Its certificate chain, leaf first, as verified by the TLS handshake.
    pub certificates: Arc<[CertificateDer<'static>]>,
}

/// Decides whether a peer may speak as a server id.
pub trait PeerAuthority: Send + Sync + fmt::Debug {
    /// `Ok` when a peer that proved `peer` in its handshake may speak as server `sid`;
    /// otherwise why not, for the log line.
    fn authorize(&self, sid: Sid, peer: &PeerInfo) -> Result<(), String>;
}

/// Mutual TLS between members.
#[derive(Debug, Clone)]
pub struct PeerTls {
    /// The listener's side: its certificate, and the check of a dialer's certificate
    /// (which must be required: an anonymous peer proves nothing).
    pub server: Arc<rustls::ServerConfig>,
    /// The dialer's side: its certificate, and the check of the listener's certificate
    /// against the host it dialed.
    pub client: Arc<rustls::ClientConfig>,
    /// Who may speak for which server id.
    pub authority: Arc<dyn PeerAuthority>,
}

/// Checks the server id a peer claims against what its connection proved, when the
/// peers speak TLS; `extensions` are the gRPC request's.
pub fn authorize(
    tls: Option<&PeerTls>,
    sid: Sid,
    extensions: &tonic::Extensions,
) -> Result<(), String> {
    let Some(tls) = tls else {
        return Ok(());
    };
    let peer = extensions
        .get::<PeerInfo>()
        .ok_or_else(|| "the connection is not TLS".to_owned())?;
    if peer.certificates.is_empty() {
        return Err("no certificate was presented".into());
    }
    tls.authority.authorize(sid, peer)
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

/// A connection between members, plaintext or TLS.
pub struct PeerStream {
    io: Io,
    info: PeerInfo,
}

impl fmt::Debug for PeerStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerStream")
            .field("tls", &matches!(self.io, Io::Tls(_)))
            .field("info", &self.info)
            .finish()
    }
}

impl PeerStream {
    fn plain(tcp: TcpStream) -> Self {
        let remote = tcp.peer_addr().ok();
        PeerStream {
            io: Io::Plain(tcp),
            info: PeerInfo {
                remote,
                certificates: Arc::from(Vec::new()),
            },
        }
    }

    fn tls(tls: tokio_rustls::TlsStream<TcpStream>) -> Self {
        let (tcp, session) = tls.get_ref();
        let remote = tcp.peer_addr().ok();
        let certificates: Vec<CertificateDer<'static>> = session
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        PeerStream {
            io: Io::Tls(Box::new(tls)),
            info: PeerInfo {
                remote,
                certificates: Arc::from(certificates),
            },
        }
    }

    /// What the peer proved.
    pub fn info(&self) -> &PeerInfo {
        &self.info
    }
}

impl Connected for PeerStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connections a listener accepts, for tonic's `serve_with_incoming_shutdown`: with
/// TLS, each handshake runs on its own task (a slow peer holds up no other), and a peer
/// whose handshake fails gets one log line, naming `what` the listener is, and is never
/// served. Accepting stops when `cancel` fires.
///
/// The listener lives in the stream, not in a task of its own: the port is free once the
/// server that polls the stream has ended, so a node stopped and awaited can bind it again
/// at once (with a detached accept task, a restart in the same process could find the old
/// listener still open for a moment and fail with `AddrInUse`).
pub fn incoming(
    listener: TcpListener,
    tls: Option<PeerTls>,
    what: &'static str,
    cancel: CancellationToken,
) -> impl Stream<Item = io::Result<PeerStream>> + Send + 'static {
    // Handshakes done on their tasks come back through this channel; the stream holds a
    // sender, so its receiver never ends while the stream lives.
    let (handshaken, done) = mpsc::channel::<PeerStream>(16);
    let accepting = Accepting {
        listener,
        acceptor: tls.map(|tls| tokio_rustls::TlsAcceptor::from(tls.server)),
        handshaken,
        done,
        what,
        cancel,
    };
    futures_util::stream::unfold(accepting, |mut a| async move {
        let stream = a.next().await?;
        Some((Ok(stream), a))
    })
}

/// The state of [`incoming`]'s stream.
struct Accepting {
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    handshaken: mpsc::Sender<PeerStream>,
    done: mpsc::Receiver<PeerStream>,
    what: &'static str,
    cancel: CancellationToken,
}

impl Accepting {
    /// The next connection ready to serve; `None` once `cancel` fired.
    async fn next(&mut self) -> Option<PeerStream> {
        let what = self.what;
        loop {
            let accepted = tokio::select! {
                () = self.cancel.cancelled() => return None,
                Some(stream) = self.done.recv() => return Some(stream),
                accepted = self.listener.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    debug!(what, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(acceptor) = self.acceptor.clone() else {
                return Some(PeerStream::plain(tcp));
            };
            let tx = self.handshaken.clone();
            let cancel = self.cancel.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                let stream = tokio::select! {
                    done = handshake => done,
                    () = cancel.cancelled() => return,
                };
                match stream {
                    Ok(Ok(stream)) => {
                        let _ = tx
                            .send(PeerStream::tls(tokio_rustls::TlsStream::Server(stream)))
                            .await;
                    }
                    Ok(Err(error)) => {
                        warn!(what, %remote, %error, "peer refused: TLS handshake failed");
                    }
                    Err(_) => warn!(what, %remote, "peer refused: no TLS handshake in time"),
                }
            });
        }
    }
}

/// Opens a channel to the peer at `addr` (`host:port`) with `endpoint`'s settings
/// (whose URI should be `http://{addr}`): over TLS when `tls` is given, the peer's
/// certificate checked against `host`.
pub async fn channel(
    endpoint: &Endpoint,
    addr: &str,
    tls: Option<&PeerTls>,
) -> Result<Channel, tonic::transport::Error> {
    let tls = tls.map(|tls| Arc::clone(&tls.client));
    endpoint
        .connect_with_connector(Connector {
            addr: addr.to_owned(),
            tls,
        })
        .await
}

/// The host of `host:port` or `[v6]:port`.
pub fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    addr.rsplit_once(':').map_or(addr, |(host, _)| host)
}

#[derive(Clone)]
struct Connector {
    addr: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<PeerStream>>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<PeerStream>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Connecting {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(&this.addr).await?;
            tcp.set_nodelay(true)?;
            let stream = match this.tls {
                None => PeerStream::plain(tcp),
                Some(config) => {
                    let name = ServerName::try_from(host_of(&this.addr).to_owned())
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                    let connector = tokio_rustls::TlsConnector::from(config);
                    let tls = connector.connect(name, tcp).await?;
                    PeerStream::tls(tokio_rustls::TlsStream::Client(tls))
                }
            };
            Ok(TokioIo::new(stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    /// The listener goes with the stream: once the server polling it has dropped it, the
    /// port binds again at once, with no task of the stream's left holding it open.
    #[tokio::test]
    async fn a_dropped_stream_frees_its_port() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut stream = Box::pin(incoming(listener, None, "test", CancellationToken::new()));
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let served = stream.next().await.unwrap().unwrap();
        drop((served, client, stream));
        TcpListener::bind(addr)
            .await
            .expect("the port is free once the stream is dropped");
    }

    /// A cancelled stream ends.
    #[tokio::test]
    async fn a_cancelled_stream_ends() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cancel = CancellationToken::new();
        let mut stream = Box::pin(incoming(listener, None, "test", cancel.clone()));
        cancel.cancel();
        assert!(stream.next().await.is_none());
    }

    #[test]
    fn hosts_are_taken_from_addresses() {
        assert_eq!(host_of("127.0.0.2:2888"), "127.0.0.2");
        assert_eq!(host_of("zk1.example.com:3888"), "zk1.example.com");
        assert_eq!(host_of("[::1]:2888"), "::1");
        assert_eq!(host_of("nohost"), "nohost");
    }
}
