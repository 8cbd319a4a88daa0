//! Decoding writes and encoding their replies.

use bytes::Bytes;
use sha1::{Digest, Sha1};
use zk_datatree::{Applied, WriteRequest};
use zk_jute::proto::{
    CheckVersionRequest, ConnectResponse, Create2Response, CreateRequest, CreateResponse,
    CreateTtlRequest, DeleteRequest, ErrorResponse, SetAclRequest, SetAclResponse, SetDataRequest,
    SetDataResponse,
};
use zk_jute::{ErrorCode, MultiRequest, MultiResponse, MultiResult, OpCode};

use super::read::decode;
use crate::wire::{header_only, reply};

/// The password of a session: derived from its id, so it survives restarts (as
/// ZooKeeper's `generatePasswd` does with its own secret).
pub(crate) fn password(session: i64) -> Bytes {
    let hash = Sha1::digest([&session.to_be_bytes()[..], b"zk-rs session secret"].concat());
    Bytes::copy_from_slice(hash.get(..16).unwrap_or_default())
}

/// The answer to a handshake that opens or resumes `session`.
pub(super) fn connect_response(
    session: i64,
    timeout: i32,
    read_only: Option<bool>,
) -> ConnectResponse {
    ConnectResponse {
        protocol_version: 0,
        timeout,
        session_id: session,
        passwd: Some(password(session)),
        read_only,
    }
}

/// Decodes a write request body.
pub(super) fn write_request(op: OpCode, body: &Bytes) -> Result<WriteRequest, ErrorCode> {
    let marshalling = |_| ErrorCode::MarshallingError;
    Ok(match op {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer => WriteRequest::Create {
            request: decode::<CreateRequest>(body).map_err(marshalling)?,
            with_stat: op == OpCode::Create2,
            container: op == OpCode::CreateContainer,
        },
        OpCode::CreateTtl => {
            WriteRequest::CreateTtl(decode::<CreateTtlRequest>(body).map_err(marshalling)?)
        }
        OpCode::Delete => WriteRequest::Delete(decode::<DeleteRequest>(body).map_err(marshalling)?),
        OpCode::SetData => {
            WriteRequest::SetData(decode::<SetDataRequest>(body).map_err(marshalling)?)
        }
        OpCode::SetAcl => WriteRequest::SetAcl(decode::<SetAclRequest>(body).map_err(marshalling)?),
        OpCode::Check => {
            WriteRequest::Check(decode::<CheckVersionRequest>(body).map_err(marshalling)?)
        }
        OpCode::Multi => WriteRequest::Multi(decode::<MultiRequest>(body).map_err(marshalling)?),
        OpCode::Reconfig => return Err(ErrorCode::ReconfigDisabled),
        _ => return Err(ErrorCode::Unimplemented),
    })
}

/// The reply to an applied write; `stat_ops` are the multi's ops sent as `create2`.
pub(super) fn write_reply(
    op: OpCode,
    xid: i32,
    zxid: i64,
    applied: &Applied,
    stat_ops: &[usize],
) -> Bytes {
    let err = applied.err;
    if op == OpCode::Multi {
        let results = applied
            .multi
            .iter()
            .enumerate()
            .map(|(i, sub)| multi_result(sub, stat_ops.binary_search(&i).is_ok()))
            .collect();
        return reply(xid, zxid, 0, Some(MultiResponse { results }));
    }
    if err != 0 {
        return header_only(xid, zxid, err);
    }
    let path = applied.path.clone().unwrap_or_default();
    let stat = applied.stat.clone().unwrap_or_default();
    match op {
        OpCode::Create => reply(xid, zxid, 0, Some(CreateResponse { path })),
        OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            reply(xid, zxid, 0, Some(Create2Response { path, stat }))
        }
        OpCode::SetData => reply(xid, zxid, 0, Some(SetDataResponse { stat })),
        OpCode::SetAcl => reply(xid, zxid, 0, Some(SetAclResponse { stat })),
        _ => header_only(xid, zxid, 0),
    }
}

/// One op's result in a multi's reply. A `create2` op is logged as a plain create (what
/// ZooKeeper 3.8.0 logs, and every release replays) and answered, as ZooKeeper 3.8.2 and
/// 3.9 answer it (ZOOKEEPER-4026), with the path and the stat, typed `create2`.
fn multi_result(sub: &Applied, create2: bool) -> MultiResult {
    let stat = || sub.stat.clone().unwrap_or_default();
    let path = || sub.path.clone().unwrap_or_default();
    match OpCode::try_from(sub.op) {
        Ok(OpCode::Error) | Err(_) => MultiResult::Error(ErrorResponse { err: sub.err }),
        Ok(OpCode::Create) if create2 => MultiResult::Create2(Create2Response {
            path: path(),
            stat: stat(),
        }),
        Ok(OpCode::Create) => MultiResult::Create(CreateResponse { path: path() }),
        Ok(OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl) => {
            MultiResult::Create2(Create2Response {
                path: path(),
                stat: stat(),
            })
        }
        Ok(OpCode::Delete | OpCode::DeleteContainer) => MultiResult::Delete,
        Ok(OpCode::SetData) => MultiResult::SetData(SetDataResponse { stat: stat() }),
        _ => MultiResult::Check,
    }
}
