//! `multi` and `multiRead` bodies. These are not in `zookeeper.jute`: ZooKeeper writes them
//! by hand as a list of [`MultiHeader`]-prefixed records, closed by the header
//! `{type: -1, done: true, err: -1}`.

use bytes::BufMut;

use crate::archive::{Reader, Record};
use crate::constants::OpCode;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::records::proto::{
    CheckVersionRequest, Create2Response, CreateRequest, CreateResponse, CreateTtlRequest,
    DeleteRequest, ErrorResponse, GetChildrenRequest, GetChildrenResponse, GetDataRequest,
    GetDataResponse, MultiHeader, SetDataRequest, SetDataResponse,
};

const CLOSING: MultiHeader = MultiHeader {
    r#type: -1,
    done: true,
    err: -1,
};
const HEADER_LEN: usize = 9;

/// One operation of a `multi` (writes) or `multiRead` (reads) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    /// `create`: answered with the path.
    Create(CreateRequest),
    /// `create2`: answered with path and stat.
    Create2(CreateRequest),
    /// `createContainer`.
    CreateContainer(CreateRequest),
    /// `createTTL`.
    CreateTtl(CreateTtlRequest),
    /// `delete`.
    Delete(DeleteRequest),
    /// `setData`.
    SetData(SetDataRequest),
    /// `check`: a version precondition.
    Check(CheckVersionRequest),
    /// `getChildren` (multiRead only).
    GetChildren(GetChildrenRequest),
    /// `getData` (multiRead only).
    GetData(GetDataRequest),
}

impl MultiOp {
    /// The opcode its header carries.
    pub fn op_code(&self) -> OpCode {
        match self {
            Self::Create(_) => OpCode::Create,
            Self::Create2(_) => OpCode::Create2,
            Self::CreateContainer(_) => OpCode::CreateContainer,
            Self::CreateTtl(_) => OpCode::CreateTtl,
            Self::Delete(_) => OpCode::Delete,
            Self::SetData(_) => OpCode::SetData,
            Self::Check(_) => OpCode::Check,
            Self::GetChildren(_) => OpCode::GetChildren,
            Self::GetData(_) => OpCode::GetData,
        }
    }

    /// The znode the operation is on.
    pub fn path(&self) -> &str {
        match self {
            Self::Create(r) | Self::Create2(r) | Self::CreateContainer(r) => &r.path,
            Self::CreateTtl(r) => &r.path,
            Self::Delete(r) => &r.path,
            Self::SetData(r) => &r.path,
            Self::Check(r) => &r.path,
            Self::GetChildren(r) => &r.path,
            Self::GetData(r) => &r.path,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Self::Create(r) | Self::Create2(r) | Self::CreateContainer(r) => r.encoded_len(),
            Self::CreateTtl(r) => r.encoded_len(),
            Self::Delete(r) => r.encoded_len(),
            Self::SetData(r) => r.encoded_len(),
            Self::Check(r) => r.encoded_len(),
            Self::GetChildren(r) => r.encoded_len(),
            Self::GetData(r) => r.encoded_len(),
        }
    }

    fn encode_body<B: BufMut>(&self, out: &mut B) {
        match self {
            Self::Create(r) | Self::Create2(r) | Self::CreateContainer(r) => r.encode(out),
            Self::CreateTtl(r) => r.encode(out),
            Self::Delete(r) => r.encode(out),
            Self::SetData(r) => r.encode(out),
            Self::Check(r) => r.encode(out),
            Self::GetChildren(r) => r.encode(out),
            Self::GetData(r) => r.encode(out),
        }
    }

    fn decode_body(op: OpCode, r: &mut Reader) -> Option<Result<Self, DecodeError>> {
        Some(match op {
            OpCode::Create => r.field("MultiRequest", "ops").map(Self::Create),
            OpCode::Create2 => r.field("MultiRequest", "ops").map(Self::Create2),
            OpCode::CreateContainer => r.field("MultiRequest", "ops").map(Self::CreateContainer),
            OpCode::CreateTtl => r.field("MultiRequest", "ops").map(Self::CreateTtl),
            OpCode::Delete => r.field("MultiRequest", "ops").map(Self::Delete),
            OpCode::SetData => r.field("MultiRequest", "ops").map(Self::SetData),
            OpCode::Check => r.field("MultiRequest", "ops").map(Self::Check),
            OpCode::GetChildren => r.field("MultiRequest", "ops").map(Self::GetChildren),
            OpCode::GetData => r.field("MultiRequest", "ops").map(Self::GetData),
            _ => return None,
        })
    }
}

/// The body of a `multi` or `multiRead` request (Java's `MultiOperationRecord`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiRequest {
    /// The operations, in order.
    pub ops: Vec<MultiOp>,
}

/// One result of a multi response, in the order of the request's operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    /// A `create` succeeded.
    Create(CreateResponse),
    /// A `create2`, `createContainer` or `createTTL` succeeded.
    Create2(Create2Response),
    /// A `delete` succeeded.
    Delete,
    /// A `setData` succeeded.
    SetData(SetDataResponse),
    /// A `check` succeeded.
    Check,
    /// A `getChildren` (multiRead).
    GetChildren(GetChildrenResponse),
    /// A `getData` (multiRead).
    GetData(GetDataResponse),
    /// The operation failed with this [`ErrorCode`](crate::ErrorCode).
    Error(ErrorResponse),
}

impl MultiResult {
    fn header(&self) -> MultiHeader {
        let (op, err) = match self {
            Self::Create(_) => (OpCode::Create, 0),
            Self::Create2(_) => (OpCode::Create2, 0),
            Self::Delete => (OpCode::Delete, 0),
            Self::SetData(_) => (OpCode::SetData, 0),
            Self::Check => (OpCode::Check, 0),
            Self::GetChildren(_) => (OpCode::GetChildren, 0),
            Self::GetData(_) => (OpCode::GetData, 0),
            Self::Error(e) => (OpCode::Error, e.err),
        };
        MultiHeader {
            r#type: op.code(),
            done: false,
            err,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Self::Create(r) => r.encoded_len(),
            Self::Create2(r) => r.encoded_len(),
            Self::Delete | Self::Check => 0,
            Self::SetData(r) => r.encoded_len(),
            Self::GetChildren(r) => r.encoded_len(),
            Self::GetData(r) => r.encoded_len(),
            Self::Error(r) => r.encoded_len(),
        }
    }

    fn encode_body<B: BufMut>(&self, out: &mut B) {
        match self {
            Self::Create(r) => r.encode(out),
            Self::Create2(r) => r.encode(out),
            Self::Delete | Self::Check => {}
            Self::SetData(r) => r.encode(out),
            Self::GetChildren(r) => r.encode(out),
            Self::GetData(r) => r.encode(out),
            Self::Error(r) => r.encode(out),
        }
    }

    fn decode_body(op: OpCode, r: &mut Reader) -> Option<Result<Self, DecodeError>> {
        Some(match op {
            OpCode::Create => r.field("MultiResponse", "results").map(Self::Create),
            OpCode::Create2 => r.field("MultiResponse", "results").map(Self::Create2),
            OpCode::Delete => Ok(Self::Delete),
            OpCode::SetData => r.field("MultiResponse", "results").map(Self::SetData),
            OpCode::Check => Ok(Self::Check),
            OpCode::GetChildren => r.field("MultiResponse", "results").map(Self::GetChildren),
            OpCode::GetData => r.field("MultiResponse", "results").map(Self::GetData),
            OpCode::Error => r.field("MultiResponse", "results").map(Self::Error),
            _ => return None,
        })
    }
}

/// The body of a `multi` or `multiRead` reply (Java's `MultiResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiResponse {
    /// One result per operation.
    pub results: Vec<MultiResult>,
}

/// Reads `{header, body}` entries until the closing header, decoding each body with
/// `body` from the header's opcode.
fn decode_list<T>(
    r: &mut Reader,
    record: &'static str,
    body: fn(OpCode, &mut Reader) -> Option<Result<T, DecodeError>>,
) -> Result<Vec<T>, DecodeError> {
    let mut items = Vec::new();
    loop {
        let at = r.offset();
        let header: MultiHeader = r.field(record, "header")?;
        if header.done {
            return Ok(items);
        }
        let unknown = || DecodeError::new(DecodeErrorKind::UnknownOpCode(header.r#type), at);
        let op = OpCode::try_from(header.r#type).map_err(|_| unknown())?;
        items.push(body(op, r).ok_or_else(unknown)??);
    }
}

impl Record for MultiRequest {
    const MIN_LEN: usize = HEADER_LEN;

    fn encode<B: BufMut>(&self, out: &mut B) {
        for op in &self.ops {
            MultiHeader {
                r#type: op.op_code().code(),
                done: false,
                err: -1,
            }
            .encode(out);
            op.encode_body(out);
        }
        CLOSING.encode(out);
    }

    fn encoded_len(&self) -> usize {
        let ops: usize = self.ops.iter().map(|op| HEADER_LEN + op.body_len()).sum();
        ops + HEADER_LEN
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        decode_list(r, "MultiRequest", MultiOp::decode_body).map(|ops| Self { ops })
    }
}

impl Record for MultiResponse {
    const MIN_LEN: usize = HEADER_LEN;

    fn encode<B: BufMut>(&self, out: &mut B) {
        for result in &self.results {
            result.header().encode(out);
            result.encode_body(out);
        }
        CLOSING.encode(out);
    }

    fn encoded_len(&self) -> usize {
        let results: usize = self.results.iter().map(|r| HEADER_LEN + r.body_len()).sum();
        results + HEADER_LEN
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        decode_list(r, "MultiResponse", MultiResult::decode_body).map(|results| Self { results })
    }
}

#[cfg(test)]
use crate::testing::Arb;

#[cfg(test)]
impl Arb for MultiRequest {
    fn arb() -> proptest::strategy::BoxedStrategy<Self> {
        use proptest::prelude::*;
        let op = prop_oneof![
            CreateRequest::arb().prop_map(MultiOp::Create),
            CreateRequest::arb().prop_map(MultiOp::Create2),
            CreateRequest::arb().prop_map(MultiOp::CreateContainer),
            CreateTtlRequest::arb().prop_map(MultiOp::CreateTtl),
            DeleteRequest::arb().prop_map(MultiOp::Delete),
            SetDataRequest::arb().prop_map(MultiOp::SetData),
            CheckVersionRequest::arb().prop_map(MultiOp::Check),
            GetChildrenRequest::arb().prop_map(MultiOp::GetChildren),
            GetDataRequest::arb().prop_map(MultiOp::GetData),
        ];
        proptest::collection::vec(op, 0..5)
            .prop_map(|ops| Self { ops })
            .boxed()
    }
}

#[cfg(test)]
impl Arb for MultiResponse {
    fn arb() -> proptest::strategy::BoxedStrategy<Self> {
        use proptest::prelude::*;
        let result = prop_oneof![
            CreateResponse::arb().prop_map(MultiResult::Create),
            Create2Response::arb().prop_map(MultiResult::Create2),
            Just(MultiResult::Delete),
            SetDataResponse::arb().prop_map(MultiResult::SetData),
            Just(MultiResult::Check),
            GetChildrenResponse::arb().prop_map(MultiResult::GetChildren),
            GetDataResponse::arb().prop_map(MultiResult::GetData),
            ErrorResponse::arb().prop_map(MultiResult::Error),
        ];
        proptest::collection::vec(result, 0..5)
            .prop_map(|results| Self { results })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{from_bytes, to_bytes};

    #[test]
    fn empty_multi_is_just_the_closing_header() {
        let bytes = to_bytes(&MultiRequest::default());
        assert_eq!(
            bytes[..],
            [0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            from_bytes::<MultiRequest>(bytes),
            Ok(MultiRequest::default())
        );
    }

    #[test]
    fn unknown_op_in_a_multi_is_named() {
        // header {type: 3 (exists), done: false, err: -1}: exists is not allowed in a multi.
        let bytes = vec![0, 0, 0, 3, 0, 0xff, 0xff, 0xff, 0xff];
        let err = from_bytes::<MultiRequest>(bytes).unwrap_err();
        assert_eq!(err, DecodeError::new(DecodeErrorKind::UnknownOpCode(3), 0));
    }

    #[test]
    fn error_results_carry_their_code_in_the_header() {
        let response = MultiResponse {
            results: vec![MultiResult::Error(ErrorResponse { err: -101 })],
        };
        let bytes = to_bytes(&response);
        assert_eq!(
            bytes[..9],
            [0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x9b]
        );
        assert_eq!(from_bytes::<MultiResponse>(bytes), Ok(response));
    }
}
