//! One client connection: reads frames and hands them to the core, which writes the
//! replies itself ([`ConnWriter`]). Four-letter words are answered here, on the first four
//! bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use zk_jute::data::Id;
use zk_jute::proto::{ConnectRequest, RequestHeader};
use zk_jute::{FrameCodec, Reader, Record};

use crate::engine::ConnId;
use crate::metrics::Throttle;
use crate::runtime::Msg;

/// Bytes queued for a TLS connection that does not read before it is cut off.
const QUEUED_BYTES_MAX: usize = 64 << 20;

/// Where the serving task writes a connection's replies: straight into the socket, or
/// (for TLS, whose records are made by one task) into a queue its writer task drains.
#[derive(Debug)]
pub(crate) enum ConnWriter {
    /// A plain socket's write half.
    Tcp(OwnedWriteHalf),
    /// The queue of a TLS connection's writer task, and how many bytes wait in it.
    Queue {
        tx: mpsc::UnboundedSender<Bytes>,
        queued: Arc<AtomicUsize>,
    },
}

impl ConnWriter {
    /// Writes `buf` as far as the connection takes it without waiting; true once all of
    /// it is written (queued, for TLS).
    pub(crate) fn write_now(&self, buf: &mut BytesMut) -> std::io::Result<bool> {
        match self {
            ConnWriter::Tcp(writer) => {
                while !buf.is_empty() {
                    match writer.try_write(buf) {
                        Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                        Ok(n) => buf.advance(n),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                        Err(e) => return Err(e),
                    }
                }
                buf.clear();
                Ok(true)
            }
            ConnWriter::Queue { tx, queued } => {
                if buf.is_empty() {
                    return Ok(true);
                }
                if queued.load(Ordering::Relaxed) > QUEUED_BYTES_MAX {
                    return Err(std::io::Error::other(
                        "the client does not read its replies",
                    ));
                }
                queued.fetch_add(buf.len(), Ordering::Relaxed);
                tx.send(buf.split().freeze())
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
                Ok(true)
            }
        }
    }

    /// Waits until the connection takes more bytes.
    pub(crate) async fn writable(&self) -> std::io::Result<()> {
        match self {
            ConnWriter::Tcp(writer) => writer.writable().await,
            ConnWriter::Queue { .. } => Ok(()),
        }
    }

    /// A queue and the task that writes what is put in it to `write`, then shuts it
    /// down (for TLS, with a `close_notify`) once the queue is dropped.
    fn queue<W: AsyncWrite + Unpin + Send + 'static>(mut write: W) -> ConnWriter {
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        let queued = Arc::new(AtomicUsize::new(0));
        let left = queued.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                for bytes in batch {
                    let len = bytes.len();
                    if write.write_all(&bytes).await.is_err() {
                        return;
                    }
                    left.fetch_sub(len, Ordering::Relaxed);
                }
                if write.flush().await.is_err() {
                    return;
                }
            }
            let _ = write.shutdown().await;
        });
        ConnWriter::Queue { tx, queued }
    }
}

/// Serves one plain connection until either side closes it.
pub(crate) async fn serve(link: Link, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    serve_split(link, read, ConnWriter::Tcp(write)).await;
}

/// Serves one connection over an established TLS session; the link's `identities` are
/// what its certificate proves (the `x509` id).
pub(crate) async fn serve_tls<S>(link: Link, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    serve_split(link, read, ConnWriter::queue(write)).await;
}

/// A connection's place in the server.
pub(crate) struct Link {
    pub(crate) conn: ConnId,
    pub(crate) addr: SocketAddr,
    pub(crate) core: mpsc::UnboundedSender<Msg>,
    pub(crate) max_frame_len: usize,
    pub(crate) throttle: Arc<Throttle>,
    /// What the connection proved before its handshake (a client certificate's ids).
    pub(crate) identities: Vec<Id>,
}

async fn serve_split<R: AsyncRead + Unpin>(link: Link, mut read: R, write: ConnWriter) {
    let Link {
        conn,
        addr,
        core,
        max_frame_len,
        throttle,
        identities,
    } = link;
    let mut first = [0_u8; 4];
    if read.read_exact(&mut first).await.is_err() {
        return;
    }
    if let Ok(word) = std::str::from_utf8(&first) {
        if crate::fourlw::WORDS.contains(&word) {
            return four_letter_word(word, write, &core).await;
        }
    }
    let mut codec = FrameCodec::new(max_frame_len);
    let mut frames = FramedRead::new(read, codec);
    // The length prefix of the first frame was consumed to look for a four-letter word.
    let mut prefixed = BytesMut::from(&first[..]);
    let first_frame = loop {
        match tokio_util::codec::Decoder::decode(&mut codec, &mut prefixed) {
            Ok(Some(frame)) => break Some(frame),
            Ok(None) => match frames.get_mut().read_buf(&mut prefixed).await {
                Ok(0) | Err(_) => break None,
                Ok(_) => continue,
            },
            Err(e) => {
                tracing::info!(%addr, error = %e, "closing a connection with a bad first frame");
                break None;
            }
        }
    };
    let Some(first_frame) = first_frame else {
        return;
    };
    let mut reader = Reader::new(first_frame);
    let Ok(request) = ConnectRequest::decode(&mut reader) else {
        tracing::info!(%addr, "closing a connection whose handshake does not decode");
        return;
    };
    let (stop, mut stopped) = oneshot::channel();
    if core
        .send(Msg::Connect {
            conn,
            addr,
            request,
            identities,
            writer: write,
            stop,
        })
        .is_err()
    {
        return;
    }
    // Any bytes already read past the handshake belong to the next frames.
    frames.read_buffer_mut().extend_from_slice(&prefixed);
    loop {
        // globalOutstandingLimit: no more requests are read while the server is full.
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            () = throttle.wait() => {}
        }
        let frame = tokio::select! {
            biased;
            frame = frames.next() => frame,
            _ = &mut stopped => break,
        };
        let Some(frame) = frame else {
            break;
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                tracing::info!(%addr, error = %e, "closing a connection with a bad frame");
                break;
            }
        };
        let mut reader = Reader::new(frame);
        let Ok(header) = RequestHeader::decode(&mut reader) else {
            tracing::info!(%addr, "closing a connection with a frame shorter than a request header");
            break;
        };
        let body = reader.rest().clone();
        let msg = Msg::Request {
            conn,
            xid: header.xid,
            op: header.r#type,
            body,
        };
        if core.send(msg).is_err() {
            break;
        }
    }
    let _ = core.send(Msg::Closed { conn });
}

async fn four_letter_word(word: &str, write: ConnWriter, core: &mpsc::UnboundedSender<Msg>) {
    let (reply, answer) = oneshot::channel();
    if core
        .send(Msg::Command {
            word: word.to_owned(),
            reply,
        })
        .is_ok()
    {
        if let Ok(text) = answer.await {
            match write {
                ConnWriter::Tcp(mut write) => {
                    let _ = write.write_all(text.as_bytes()).await;
                    let _ = write.shutdown().await;
                }
                queue @ ConnWriter::Queue { .. } => {
                    // Dropping the queue shuts the connection down once this is written.
                    let _ = queue.write_now(&mut BytesMut::from(text.as_bytes()));
                }
            }
        }
    }
}
