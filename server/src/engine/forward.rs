//! A client write a learner forwards to its leader, as ZooKeeper's `REQUEST` packet
//! carries it: the session, the cxid, the opcode, the connection's identities and the
//! request body. Only members of one ensemble read it.

use bytes::{BufMut, Bytes, BytesMut};
use zk_jute::data::Id;
use zk_jute::{DecodeError, Reader, Record};

/// Identities a forwarded request may carry, at most (a connection gathers them with
/// `addauth`; the leader refuses more).
const AUTH_MAX: usize = 1_024;

/// A forwarded client write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forwarded {
    pub(crate) session: i64,
    pub(crate) cxid: i32,
    pub(crate) op: i32,
    pub(crate) auth: Vec<Id>,
    pub(crate) body: Bytes,
}

impl Forwarded {
    /// The bytes a learner sends.
    pub(crate) fn encode(&self) -> Bytes {
        let auth_len: usize = self.auth.iter().map(Record::encoded_len).sum();
        let mut out = BytesMut::with_capacity(20 + auth_len + self.body.len());
        out.put_i64(self.session);
        out.put_i32(self.cxid);
        out.put_i32(self.op);
        out.put_i32(self.auth.len() as i32);
        for id in &self.auth {
            id.encode(&mut out);
        }
        out.put_slice(&self.body);
        out.freeze()
    }

    /// Reads what a learner sent; the body is the rest.
    pub(crate) fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let session = r.read_i64()?;
        let cxid = r.read_i32()?;
        let op = r.read_i32()?;
        let count = r.read_i32()?;
        let count = match usize::try_from(count) {
            Err(_) => return Err(r.error(zk_jute::DecodeErrorKind::NegativeLength(count))),
            Ok(n) if n > AUTH_MAX.min(r.remaining()) => {
                return Err(r.error(zk_jute::DecodeErrorKind::LengthTooLarge {
                    length: count,
                    remaining: r.remaining(),
                }));
            }
            Ok(n) => n,
        };
        let auth = (0..count)
            .map(|_| Id::decode(&mut r))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            session,
            cxid,
            op,
            auth,
            body: r.rest().clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_write_round_trips_and_garbage_is_refused() {
        let f = Forwarded {
            session: 0x0100_0000_0000_0001,
            cxid: 7,
            op: 1,
            auth: vec![Id {
                scheme: "digest".into(),
                id: "alice:x".into(),
            }],
            body: Bytes::from_static(b"body"),
        };
        assert_eq!(Forwarded::decode(f.encode()), Ok(f));
        assert!(Forwarded::decode(Bytes::from_static(&[0; 5])).is_err());
        let mut huge = BytesMut::new();
        huge.put_i64(1);
        huge.put_i32(1);
        huge.put_i32(1);
        huge.put_i32(i32::MAX);
        assert!(Forwarded::decode(huge.freeze()).is_err());
    }
}
