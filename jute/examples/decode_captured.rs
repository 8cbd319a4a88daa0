//! Decodes bytes Apache ZooKeeper 3.8.0 itself wrote: three client-protocol frames (a
//! `getData` request, a ping, a watch notification) and the two records of a txn log
//! entry (its `TxnHeader` and a `CreateTxn`), all from the crate's golden fixtures. Then
//! it feeds the decoder damaged input, to show the errors it gives instead of panicking.
//!
//! ```sh
//! cargo run -p zk-jute --example decode_captured
//! ```

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;
use zk_jute::proto::{GetDataRequest, ReplyHeader, RequestHeader, WatcherEvent};
use zk_jute::txn::{CreateTxn, TxnHeader};
use zk_jute::{
    DecodeError, EventType, FrameCodec, KeeperState, OpCode, Perms, Reader, Record, Zxid,
    from_bytes, xid,
};

const GET_DATA_FRAME: &[u8] = include_bytes!("../tests/fixtures/Frame.getdata-request.bin");
const PING_FRAME: &[u8] = include_bytes!("../tests/fixtures/Frame.ping-request.bin");
const NOTIFICATION_FRAME: &[u8] = include_bytes!("../tests/fixtures/Frame.notification.bin");
const TXN_HEADER: &[u8] = include_bytes!("../tests/fixtures/TxnHeader.basic.bin");
const CREATE_TXN: &[u8] = include_bytes!("../tests/fixtures/CreateTxn.basic.bin");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The client protocol: a 4-byte length, then a header and a body. The codec cuts
    // frames out of a read buffer; the header says how to read the body.
    let mut codec = FrameCodec::default();
    let mut wire = BytesMut::new();
    for frame in [GET_DATA_FRAME, PING_FRAME] {
        wire.extend_from_slice(frame);
    }
    while let Some(frame) = codec.decode(&mut wire)? {
        let len = frame.len();
        let mut r = Reader::new(frame);
        let header = RequestHeader::decode(&mut r)?;
        let op = OpCode::try_from(header.r#type).map_err(|t| format!("unknown opcode {t}"))?;
        match op {
            OpCode::GetData => {
                let request = GetDataRequest::decode(&mut r)?;
                println!(
                    "request  ({len} bytes): xid {} getData {} watch={}",
                    header.xid, request.path, request.watch
                );
                assert_eq!((header.xid, request.path.as_str()), (7, "/a/b"));
            }
            OpCode::Ping => {
                println!("request  ({len} bytes): xid {} ping", header.xid);
                assert_eq!(header.xid, xid::PING);
            }
            other => println!("request  ({len} bytes): {other:?}"),
        }
        r.finish()?; // nothing may be left over
    }

    // A reply frame with xid -1 is a watch notification.
    let frame = codec
        .decode(&mut BytesMut::from(NOTIFICATION_FRAME))?
        .ok_or("an incomplete frame")?;
    let mut r = Reader::new(frame);
    let header = ReplyHeader::decode(&mut r)?;
    assert_eq!(header.xid, xid::NOTIFICATION);
    let event = WatcherEvent::decode(&mut r)?;
    r.finish()?;
    let event_type = EventType::try_from(event.r#type).map_err(|t| format!("event {t}"))?;
    let state = KeeperState::try_from(event.state).map_err(|s| format!("state {s}"))?;
    println!(
        "reply    (notification): {event_type:?} on {} ({state:?})",
        event.path
    );
    assert_eq!(event_type, EventType::NodeDataChanged);

    // A txn log entry's record is a `TxnHeader` followed by the txn its type names.
    let header: TxnHeader = from_bytes(Bytes::from_static(TXN_HEADER))?;
    let op = OpCode::try_from(header.r#type).map_err(|t| format!("unknown opcode {t}"))?;
    assert_eq!(op, OpCode::Create);
    let create: CreateTxn = from_bytes(Bytes::from_static(CREATE_TXN))?;
    let acl: Vec<String> = create
        .acl
        .iter()
        .flatten()
        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, Perms(a.perms)))
        .collect();
    println!(
        "log entry: zxid {} session {:#x} cxid {} {op:?} {} = {:?}, acl {acl:?}",
        Zxid(header.zxid),
        header.client_id,
        header.cxid,
        create.path,
        create.data.as_deref().map(String::from_utf8_lossy),
    );
    assert_eq!(create.path, "/a");
    assert_eq!(create.encoded_len(), CREATE_TXN.len());

    // Damaged input is an error naming the record, the field and the offset; never a panic.
    let cut = &NOTIFICATION_FRAME[4..NOTIFICATION_FRAME.len() - 1];
    let mut r = Reader::new(Bytes::copy_from_slice(cut));
    ReplyHeader::decode(&mut r)?;
    let error: DecodeError = WatcherEvent::decode(&mut r).expect_err("one byte short");
    println!("a notification one byte short: {error}");
    let huge = [0x7f, 0xff, 0xff, 0xff, 0, 0];
    let error = codec
        .decode(&mut BytesMut::from(&huge[..]))
        .expect_err("too large");
    println!("a frame claiming 2 GiB: {error}");
    Ok(())
}
