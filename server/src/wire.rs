//! Frames the server sends: replies, watch notifications, connect responses.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder;
use zk_jute::proto::{ReplyHeader, WatcherEvent};
use zk_jute::{FrameCodec, KeeperState, Record, xid};
use zk_watch::WatchedEvent;

/// One length-prefixed frame holding `record`.
pub(crate) fn frame(record: impl Record) -> Bytes {
    let mut out = BytesMut::with_capacity(record.encoded_len() + 4);
    // Encoding only fails for bodies over 2 GiB, which no reply can reach.
    if FrameCodec::default().encode(record, &mut out).is_err() {
        tracing::error!("reply too large to frame");
    }
    out.freeze()
}

/// The zxid of a notification no txn caused (Java's `WatchedEvent.NO_ZXID`).
pub(crate) const NO_ZXID: i64 = -1;

/// A reply: header, then the body if any.
pub(crate) fn reply<B: Record>(xid: i32, zxid: i64, err: i32, body: Option<B>) -> Bytes {
    let header = ReplyHeader { xid, zxid, err };
    match body {
        Some(body) if err == 0 => frame((header, body)),
        _ => frame(header),
    }
}

/// A reply without a body.
pub(crate) fn header_only(xid: i32, zxid: i64, err: i32) -> Bytes {
    frame(ReplyHeader { xid, zxid, err })
}

/// A watch notification: xid -1 and, as ZooKeeper 3.9 sends it (ZOOKEEPER-4655), the zxid
/// of the txn that fired it, or -1 ([`NO_ZXID`]) for events no txn caused (the ones
/// `setWatches` fires for changes missed while disconnected). ZooKeeper 3.8.0 sends -1 for
/// every event.
pub(crate) fn notification(event: &WatchedEvent, zxid: i64) -> Bytes {
    let header = ReplyHeader {
        xid: xid::NOTIFICATION,
        zxid,
        err: 0,
    };
    let body = WatcherEvent {
        r#type: event.event_type.code(),
        state: KeeperState::SyncConnected.code(),
        path: event.path.clone(),
    };
    frame((header, body))
}
