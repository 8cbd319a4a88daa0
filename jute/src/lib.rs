//! Apache ZooKeeper's jute serialization, byte for byte.
//!
//! This crate is the wire and disk vocabulary of a ZooKeeper-compatible system: the binary
//! archive ([`Record`], [`Reader`]), every record of ZooKeeper's `zookeeper.jute`
//! ([`data`], [`proto`], [`txn`], [`quorum`], [`persistence`]), the hand-framed `multi`
//! bodies ([`MultiRequest`], [`MultiResponse`]), the protocol's numbers ([`OpCode`],
//! [`ErrorCode`], [`EventType`], [`KeeperState`], [`CreateMode`], [`Perms`], [`xid`],
//! [`Zxid`]) and the length-prefixed [`FrameCodec`] of the client protocol.
//!
//! It is not a client or a server: it knows nothing of sessions, trees, files or sockets.
//!
//! Decoding treats input as untrusted: it never panics, never reserves more memory than
//! the input could fill whatever a length prefix claims, and fails with a [`DecodeError`]
//! naming what went wrong, the byte offset and the record field. Buffers decode as
//! zero-copy [`Bytes`](bytes::Bytes) slices of the frame.
//!
//! Strings follow the reference to the byte, quirks included: jute writes a character
//! outside the Basic Multilingual Plane as two 3-byte surrogates (6 bytes, not UTF-8's 4),
//! and reads malformed UTF-8 (such surrogates among it) as U+FFFD. Null strings decode as
//! empty, except where null means something (`ReconfigRequest`), which uses
//! `Option<String>`.
//!
//! # Example: a `getData` request frame, and back
//!
//! ```
//! use bytes::BytesMut;
//! use tokio_util::codec::{Decoder, Encoder};
//! use zk_jute::{proto::{GetDataRequest, RequestHeader}, FrameCodec, OpCode, Reader, Record};
//!
//! let mut codec = FrameCodec::default(); // jute.maxbuffer = 0xfffff
//! let header = RequestHeader { xid: 1, r#type: OpCode::GetData.code() };
//! let request = GetDataRequest { path: "/app/config".into(), watch: true };
//!
//! let mut wire = BytesMut::new();
//! codec.encode((header.clone(), request.clone()), &mut wire)?;
//! assert_eq!(&wire[..4], &[0, 0, 0, 24]); // length prefix: 8 header + 4 + 11 + 1 body
//!
//! let frame = codec.decode(&mut wire)?.expect("a whole frame");
//! let mut reader = Reader::new(frame);
//! assert_eq!(RequestHeader::decode(&mut reader)?, header);
//! assert_eq!(GetDataRequest::decode(&mut reader)?, request);
//! reader.finish()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)
)]

mod archive;
mod constants;
mod error;
mod frame;
mod macros;
mod multi;
mod records;
pub mod sasl;
#[cfg(test)]
mod testing;
mod utf8;

pub use archive::{Reader, Record, from_bytes, to_bytes};
pub use constants::{
    AddWatchMode, CreateMode, ErrorCode, EventType, KeeperState, OpCode, Perms, WatcherType, Zxid,
    xid,
};
pub use error::{DecodeError, DecodeErrorKind};
pub use frame::{DEFAULT_MAX_FRAME_LEN, FrameCodec, FrameError};
pub use multi::{MultiOp, MultiRequest, MultiResponse, MultiResult};
pub use records::{data, persistence, proto, quorum, txn};

// The README's examples, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Calls `$m!` with the Rust path and the Java class name of every record type this crate
/// encodes, as `$m!(path::Type => "JavaName", ...)`. Handy for tests and fuzzers that must
/// cover every record.
#[macro_export]
macro_rules! for_each_record {
    ($m:ident) => {
        $m! {
            $crate::data::Id => "Id",
            $crate::data::Acl => "ACL",
            $crate::data::Stat => "Stat",
            $crate::data::StatPersisted => "StatPersisted",
            $crate::data::ClientInfo => "ClientInfo",
            $crate::proto::ConnectRequest => "ConnectRequest",
            $crate::proto::ConnectResponse => "ConnectResponse",
            $crate::proto::SetWatches => "SetWatches",
            $crate::proto::SetWatches2 => "SetWatches2",
            $crate::proto::RequestHeader => "RequestHeader",
            $crate::proto::MultiHeader => "MultiHeader",
            $crate::proto::AuthPacket => "AuthPacket",
            $crate::proto::ReplyHeader => "ReplyHeader",
            $crate::proto::GetDataRequest => "GetDataRequest",
            $crate::proto::SetDataRequest => "SetDataRequest",
            $crate::proto::ReconfigRequest => "ReconfigRequest",
            $crate::proto::SetDataResponse => "SetDataResponse",
            $crate::proto::GetSaslRequest => "GetSASLRequest",
            $crate::proto::SetSaslRequest => "SetSASLRequest",
            $crate::proto::SetSaslResponse => "SetSASLResponse",
            $crate::proto::CreateRequest => "CreateRequest",
            $crate::proto::CreateTtlRequest => "CreateTTLRequest",
            $crate::proto::DeleteRequest => "DeleteRequest",
            $crate::proto::GetChildrenRequest => "GetChildrenRequest",
            $crate::proto::GetAllChildrenNumberRequest => "GetAllChildrenNumberRequest",
            $crate::proto::GetChildren2Request => "GetChildren2Request",
            $crate::proto::CheckVersionRequest => "CheckVersionRequest",
            $crate::proto::GetMaxChildrenRequest => "GetMaxChildrenRequest",
            $crate::proto::GetMaxChildrenResponse => "GetMaxChildrenResponse",
            $crate::proto::SetMaxChildrenRequest => "SetMaxChildrenRequest",
            $crate::proto::SyncRequest => "SyncRequest",
            $crate::proto::SyncResponse => "SyncResponse",
            $crate::proto::GetAclRequest => "GetACLRequest",
            $crate::proto::SetAclRequest => "SetACLRequest",
            $crate::proto::SetAclResponse => "SetACLResponse",
            $crate::proto::AddWatchRequest => "AddWatchRequest",
            $crate::proto::WatcherEvent => "WatcherEvent",
            $crate::proto::ErrorResponse => "ErrorResponse",
            $crate::proto::CreateResponse => "CreateResponse",
            $crate::proto::Create2Response => "Create2Response",
            $crate::proto::ExistsRequest => "ExistsRequest",
            $crate::proto::ExistsResponse => "ExistsResponse",
            $crate::proto::GetDataResponse => "GetDataResponse",
            $crate::proto::GetChildrenResponse => "GetChildrenResponse",
            $crate::proto::GetAllChildrenNumberResponse => "GetAllChildrenNumberResponse",
            $crate::proto::GetChildren2Response => "GetChildren2Response",
            $crate::proto::GetAclResponse => "GetACLResponse",
            $crate::proto::CheckWatchesRequest => "CheckWatchesRequest",
            $crate::proto::RemoveWatchesRequest => "RemoveWatchesRequest",
            $crate::proto::GetEphemeralsRequest => "GetEphemeralsRequest",
            $crate::proto::GetEphemeralsResponse => "GetEphemeralsResponse",
            $crate::proto::WhoAmIResponse => "WhoAmIResponse",
            $crate::quorum::LearnerInfo => "LearnerInfo",
            $crate::quorum::QuorumPacket => "QuorumPacket",
            $crate::quorum::QuorumAuthPacket => "QuorumAuthPacket",
            $crate::persistence::FileHeader => "FileHeader",
            $crate::txn::TxnDigest => "TxnDigest",
            $crate::txn::TxnHeader => "TxnHeader",
            $crate::txn::CreateTxnV0 => "CreateTxnV0",
            $crate::txn::CreateTxn => "CreateTxn",
            $crate::txn::CreateTtlTxn => "CreateTTLTxn",
            $crate::txn::CreateContainerTxn => "CreateContainerTxn",
            $crate::txn::DeleteTxn => "DeleteTxn",
            $crate::txn::SetDataTxn => "SetDataTxn",
            $crate::txn::CheckVersionTxn => "CheckVersionTxn",
            $crate::txn::SetAclTxn => "SetACLTxn",
            $crate::txn::SetMaxChildrenTxn => "SetMaxChildrenTxn",
            $crate::txn::CreateSessionTxn => "CreateSessionTxn",
            $crate::txn::CloseSessionTxn => "CloseSessionTxn",
            $crate::txn::ErrorTxn => "ErrorTxn",
            $crate::txn::Txn => "Txn",
            $crate::txn::MultiTxn => "MultiTxn",
            $crate::MultiRequest => "MultiRequest",
            $crate::MultiResponse => "MultiResponse",
        }
    };
}

#[cfg(test)]
mod property_tests {
    use proptest::prelude::*;

    use crate::testing::Arb;
    use crate::{Record, from_bytes, to_bytes};

    fn round_trips<R: Record + Arb + PartialEq + 'static>() {
        proptest!(ProptestConfig::with_cases(64), |(record in R::arb())| {
            let bytes = to_bytes(&record);
            prop_assert_eq!(bytes.len(), record.encoded_len());
            prop_assert_eq!(from_bytes::<R>(bytes)?, record);
        });
    }

    macro_rules! property_test_all {
        ($($ty:path => $name:literal),* $(,)?) => {
            #[test]
            fn decode_encode_round_trips_for_every_record() {
                $( round_trips::<$ty>(); )*
            }
        };
    }
    crate::for_each_record!(property_test_all);
}
