//! Transactions as the tree applies them: a typed view of a txn log entry's body.

use bytes::Bytes;
use zk_jute::txn::{
    CheckVersionTxn, CloseSessionTxn, CreateContainerTxn, CreateSessionTxn, CreateTtlTxn,
    CreateTxn, DeleteTxn, ErrorTxn, MultiTxn, SetAclTxn, SetDataTxn, Txn,
};
use zk_jute::{DecodeError, OpCode, Reader, Record, to_bytes};

/// One transaction: what follows a `TxnHeader` in the log, typed by the header's opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transaction {
    /// `create`: a persistent, sequential or ephemeral node.
    Create(CreateTxn),
    /// `create2`: the same, answered with a stat.
    Create2(CreateTxn),
    /// `createTTL`.
    CreateTtl(CreateTtlTxn),
    /// `createContainer`.
    CreateContainer(CreateContainerTxn),
    /// `delete`.
    Delete(DeleteTxn),
    /// `deleteContainer`: the server removing an empty container or expired TTL node.
    DeleteContainer(DeleteTxn),
    /// `setData`.
    SetData(SetDataTxn),
    /// `reconfig`: a new `/zookeeper/config`.
    Reconfig(SetDataTxn),
    /// `setACL`.
    SetAcl(SetAclTxn),
    /// `check`: a version check (inside a multi).
    Check(CheckVersionTxn),
    /// `createSession`.
    CreateSession(CreateSessionTxn),
    /// `closeSession`; the body is absent when ZooKeeper's `closeSessionTxn.enabled` is off.
    CloseSession(Option<CloseSessionTxn>),
    /// A failed request; in a multi, a failed or skipped op.
    Error(ErrorTxn),
    /// `multi`: the ops' txns, applied all or nothing.
    Multi(Vec<Transaction>),
}

/// Why a txn body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// The body does not decode as the header's type says.
    #[error("txn body: {0}")]
    Decode(#[from] DecodeError),
    /// The header names a type that has no txn.
    #[error("no txn has type {0}")]
    UnknownType(i32),
    /// A multi contains a multi.
    #[error("a multi txn may not contain a multi")]
    NestedMulti,
}

impl Transaction {
    /// The opcode its `TxnHeader` carries.
    pub fn op_code(&self) -> OpCode {
        match self {
            Self::Create(_) => OpCode::Create,
            Self::Create2(_) => OpCode::Create2,
            Self::CreateTtl(_) => OpCode::CreateTtl,
            Self::CreateContainer(_) => OpCode::CreateContainer,
            Self::Delete(_) => OpCode::Delete,
            Self::DeleteContainer(_) => OpCode::DeleteContainer,
            Self::SetData(_) => OpCode::SetData,
            Self::Reconfig(_) => OpCode::Reconfig,
            Self::SetAcl(_) => OpCode::SetAcl,
            Self::Check(_) => OpCode::Check,
            Self::CreateSession(_) => OpCode::CreateSession,
            Self::CloseSession(_) => OpCode::CloseSession,
            Self::Error(_) => OpCode::Error,
            Self::Multi(_) => OpCode::Multi,
        }
    }

    /// The encoded body, as the log stores it after the header.
    pub fn encode(&self) -> Bytes {
        match self {
            Self::Create(t) | Self::Create2(t) => to_bytes(t),
            Self::CreateTtl(t) => to_bytes(t),
            Self::CreateContainer(t) => to_bytes(t),
            Self::Delete(t) | Self::DeleteContainer(t) => to_bytes(t),
            Self::SetData(t) | Self::Reconfig(t) => to_bytes(t),
            Self::SetAcl(t) => to_bytes(t),
            Self::Check(t) => to_bytes(t),
            Self::CreateSession(t) => to_bytes(t),
            Self::CloseSession(t) => t.as_ref().map(to_bytes).unwrap_or_default(),
            Self::Error(t) => to_bytes(t),
            Self::Multi(txns) => {
                let txns = txns.iter().map(|t| Txn {
                    r#type: t.op_code().code(),
                    data: Some(t.encode()),
                });
                to_bytes(&MultiTxn {
                    txns: Some(txns.collect()),
                })
            }
        }
    }

    /// Reads a body of type `op` (a `TxnHeader.type`). Bytes after the record (such as a
    /// `TxnDigest`) are left for the caller: pass a reader to [`Transaction::read`] for that.
    pub fn decode(op: i32, body: Bytes) -> Result<Self, TxnError> {
        let mut reader = Reader::new(body);
        Self::read(op, &mut reader)
    }

    /// Reads a body of type `op` from `r`, leaving any following bytes unread.
    pub fn read(op: i32, r: &mut Reader) -> Result<Self, TxnError> {
        let code = OpCode::try_from(op).map_err(TxnError::UnknownType)?;
        Ok(match code {
            OpCode::Create => Self::Create(CreateTxn::decode(r)?),
            OpCode::Create2 => Self::Create2(CreateTxn::decode(r)?),
            OpCode::CreateTtl => Self::CreateTtl(CreateTtlTxn::decode(r)?),
            OpCode::CreateContainer => Self::CreateContainer(CreateContainerTxn::decode(r)?),
            OpCode::Delete => Self::Delete(DeleteTxn::decode(r)?),
            OpCode::DeleteContainer => Self::DeleteContainer(DeleteTxn::decode(r)?),
            OpCode::SetData => Self::SetData(SetDataTxn::decode(r)?),
            OpCode::Reconfig => Self::Reconfig(SetDataTxn::decode(r)?),
            OpCode::SetAcl => Self::SetAcl(SetAclTxn::decode(r)?),
            OpCode::Check => Self::Check(CheckVersionTxn::decode(r)?),
            OpCode::CreateSession => Self::CreateSession(CreateSessionTxn::decode(r)?),
            OpCode::CloseSession if r.remaining() == 0 => Self::CloseSession(None),
            OpCode::CloseSession => Self::CloseSession(Some(CloseSessionTxn::decode(r)?)),
            OpCode::Error => Self::Error(ErrorTxn::decode(r)?),
            OpCode::Multi => {
                let multi = MultiTxn::decode(r)?;
                let subs = multi.txns.unwrap_or_default().into_iter().map(|sub| {
                    if sub.r#type == OpCode::Multi.code() {
                        return Err(TxnError::NestedMulti);
                    }
                    Self::decode(sub.r#type, sub.data.unwrap_or_default())
                });
                Self::Multi(subs.collect::<Result<_, _>>()?)
            }
            _ => return Err(TxnError::UnknownType(op)),
        })
    }

    /// An error txn with `code`.
    pub fn error(code: zk_jute::ErrorCode) -> Self {
        Self::Error(ErrorTxn { err: code.code() })
    }
}

/// Decodes a whole body of type `op` with nothing after it.
pub fn decode_exact(op: i32, body: Bytes) -> Result<Transaction, TxnError> {
    let mut reader = Reader::new(body);
    let txn = Transaction::read(op, &mut reader)?;
    reader.finish()?;
    Ok(txn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_jute::from_bytes;

    #[test]
    fn multi_bodies_nest_their_txns() {
        let multi = Transaction::Multi(vec![
            Transaction::Delete(DeleteTxn { path: "/a".into() }),
            Transaction::error(zk_jute::ErrorCode::RuntimeInconsistency),
        ]);
        let body = multi.encode();
        assert_eq!(decode_exact(OpCode::Multi.code(), body.clone()), Ok(multi));
        let raw: MultiTxn = from_bytes(body).unwrap();
        assert_eq!(raw.txns.unwrap()[1].r#type, OpCode::Error.code());
    }

    #[test]
    fn close_session_without_body() {
        assert_eq!(
            Transaction::decode(OpCode::CloseSession.code(), Bytes::new()),
            Ok(Transaction::CloseSession(None))
        );
        assert_eq!(
            Transaction::decode(3, Bytes::new()),
            Err(TxnError::UnknownType(3))
        );
    }
}
