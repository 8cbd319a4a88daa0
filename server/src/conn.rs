//! One client connection: reads frames and hands them to the core, which writes the
//! replies to the socket itself. Four-letter words are answered here, on the first four
//! bytes.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use zk_jute::proto::{ConnectRequest, RequestHeader};
use zk_jute::{FrameCodec, Reader, Record};

use crate::engine::ConnId;
use crate::metrics::Throttle;
use crate::runtime::Msg;

/// Serves one connection until either side closes it.
pub(crate) async fn serve(
    conn: ConnId,
    stream: TcpStream,
    addr: SocketAddr,
    core: mpsc::UnboundedSender<Msg>,
    max_frame_len: usize,
    throttle: Arc<Throttle>,
) {
    let _ = stream.set_nodelay(true);
    let (mut read, write) = stream.into_split();
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

async fn four_letter_word(
    word: &str,
    mut write: OwnedWriteHalf,
    core: &mpsc::UnboundedSender<Msg>,
) {
    let (reply, answer) = oneshot::channel();
    if core
        .send(Msg::Command {
            word: word.to_owned(),
            reply,
        })
        .is_ok()
    {
        if let Ok(text) = answer.await {
            let _ = write.write_all(text.as_bytes()).await;
        }
    }
    let _ = write.shutdown().await;
}
