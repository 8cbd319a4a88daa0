//! ZooKeeper's binary archive (`BinaryOutputArchive` / `BinaryInputArchive`).
//!
//! Layout: `int` is 4 bytes and `long` 8 bytes, both big-endian two's complement; `boolean`
//! is one byte (written 0 or 1, read as "non-zero is true"); `buffer` and `ustring` are an
//! `int` length followed by that many bytes, with length `-1` meaning null; `vector<T>` is
//! an `int` count followed by the elements, `-1` meaning null; a record is its fields in
//! declaration order with nothing around them.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, DecodeErrorKind};

/// A value with a jute encoding: every record, and the primitive field types.
///
/// | jute        | Rust                                              |
/// |-------------|---------------------------------------------------|
/// | `int`       | `i32`                                             |
/// | `long`      | `i64`                                             |
/// | `boolean`   | `bool` (`Option<bool>` for an optional trailing field) |
/// | `buffer`    | `Option<Bytes>` (`None` is null)                  |
/// | `ustring`   | `String` (null decodes as empty) or `Option<String>` |
/// | `vector<T>` | `Option<Vec<T>>` (`None` is null)                 |
pub trait Record: Sized {
    /// The fewest bytes any encoding of this type takes. Used to bound allocations made
    /// on the word of an untrusted length prefix.
    const MIN_LEN: usize;

    /// Appends this value's encoding to `out`.
    fn encode<B: BufMut>(&self, out: &mut B);

    /// The exact number of bytes [`encode`](Record::encode) appends.
    fn encoded_len(&self) -> usize;

    /// Reads one value from `r`, advancing past it.
    fn decode(r: &mut Reader) -> Result<Self, DecodeError>;
}

/// A cursor over untrusted input, holding the input as [`Bytes`] so that buffers decode as
/// zero-copy slices of it.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
    start_len: usize,
}

impl Reader {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: Bytes) -> Self {
        let start_len = buf.len();
        Self { buf, start_len }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Bytes read so far: the offset of the next byte in the original input.
    pub fn offset(&self) -> usize {
        self.start_len - self.buf.len()
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &Bytes {
        &self.buf
    }

    /// Fails with [`DecodeErrorKind::TrailingBytes`] unless the input is used up.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(DecodeErrorKind::TrailingBytes(n))),
        }
    }

    /// An error of `kind` at the current offset.
    pub fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.offset())
    }

    fn need(&self, needed: usize) -> Result<(), DecodeError> {
        let remaining = self.remaining();
        if needed > remaining {
            return Err(self.error(DecodeErrorKind::UnexpectedEof { needed, remaining }));
        }
        Ok(())
    }

    /// Reads a jute `int`.
    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    /// Reads a jute `long`.
    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    /// Reads a jute `boolean`: any non-zero byte is true, as Java's `readBoolean`.
    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8() != 0)
    }

    /// Reads a length prefix: `None` for null (`-1`), otherwise a length that the rest of the
    /// input can hold, given that each unit takes at least `unit_len` bytes.
    fn read_len(&mut self, unit_len: usize) -> Result<Option<usize>, DecodeError> {
        let at = self.offset();
        let length = self.read_i32()?;
        let remaining = self.remaining();
        let Ok(len) = usize::try_from(length) else {
            if length == -1 {
                return Ok(None);
            }
            return Err(DecodeError::new(
                DecodeErrorKind::NegativeLength(length),
                at,
            ));
        };
        if len.saturating_mul(unit_len) > remaining {
            let kind = DecodeErrorKind::LengthTooLarge { length, remaining };
            return Err(DecodeError::new(kind, at));
        }
        Ok(Some(len))
    }

    /// Reads a jute `buffer` as a zero-copy slice of the input; `None` is null.
    pub fn read_buffer(&mut self) -> Result<Option<Bytes>, DecodeError> {
        Ok(self.read_len(1)?.map(|len| self.buf.split_to(len)))
    }

    /// Reads a jute `ustring`; `None` is null. Malformed UTF-8 becomes U+FFFD, as in
    /// ZooKeeper (see the crate docs on strings).
    pub fn read_opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        match self.read_buffer()? {
            None => Ok(None),
            Some(bytes) => Ok(Some(crate::utf8::decode(bytes.into()))),
        }
    }

    /// Reads a jute `ustring`, taking null as the empty string.
    pub fn read_string(&mut self) -> Result<String, DecodeError> {
        Ok(self.read_opt_string()?.unwrap_or_default())
    }

    /// Reads a jute `vector<T>`; `None` is null. Capacity reserved up front never exceeds
    /// what the remaining input could really hold, whatever the count prefix claims.
    pub fn read_vec<T: Record>(&mut self) -> Result<Option<Vec<T>>, DecodeError> {
        let Some(count) = self.read_len(T::MIN_LEN)? else {
            return Ok(None);
        };
        let per_item = T::MIN_LEN.max(size_of::<T>()).max(1);
        let mut items = Vec::with_capacity(count.min(self.remaining() / per_item));
        for _ in 0..count {
            items.push(T::decode(self)?);
        }
        Ok(Some(items))
    }

    /// Reads a `T`, attributing any error to `record.field`.
    pub fn field<T: Record>(
        &mut self,
        record: &'static str,
        field: &'static str,
    ) -> Result<T, DecodeError> {
        T::decode(self).map_err(|e| e.in_field(record, field))
    }
}

/// Decodes exactly one `R` from `bytes`; trailing bytes are an error.
pub fn from_bytes<R: Record>(bytes: impl Into<Bytes>) -> Result<R, DecodeError> {
    let mut reader = Reader::new(bytes.into());
    let record = R::decode(&mut reader)?;
    reader.finish()?;
    Ok(record)
}

/// Encodes `record` into a new buffer of exactly its encoded length.
pub fn to_bytes<R: Record>(record: &R) -> Bytes {
    let mut out = BytesMut::with_capacity(record.encoded_len());
    record.encode(&mut out);
    out.freeze()
}

/// Writes a jute length prefix. Lengths beyond `i32::MAX` cannot be expressed in jute;
/// callers bound their payloads far below that (`jute.maxbuffer`).
fn put_len<B: BufMut>(out: &mut B, len: usize) {
    debug_assert!(i32::try_from(len).is_ok(), "jute length {len} exceeds i32");
    out.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
}

impl Record for i32 {
    const MIN_LEN: usize = 4;
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_i32(*self);
    }
    fn encoded_len(&self) -> usize {
        4
    }
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_i32()
    }
}

impl Record for i64 {
    const MIN_LEN: usize = 8;
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_i64(*self);
    }
    fn encoded_len(&self) -> usize {
        8
    }
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_i64()
    }
}

impl Record for bool {
    const MIN_LEN: usize = 1;
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u8(u8::from(*self));
    }
    fn encoded_len(&self) -> usize {
        1
    }
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_bool()
    }
}

/// An optional trailing boolean, such as `ConnectRequest.readOnly`: clients before 3.4
/// omit it. `None` encodes as nothing and is what an exhausted input decodes to.
impl Record for Option<bool> {
    const MIN_LEN: usize = 0;
    fn encode<B: BufMut>(&self, out: &mut B) {
        if let Some(b) = self {
            b.encode(out);
        }
    }
    fn encoded_len(&self) -> usize {
        usize::from(self.is_some())
    }
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        if r.remaining() == 0 {
            return Ok(None);
        }
        r.read_bool().map(Some)
    }
}

impl Record for Option<Bytes> {
    const MIN_LEN: usize = 4;
    fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            None => out.put_i32(-1),
            Some(bytes) => {
                put_len(out, bytes.len());
                out.put_slice(bytes);
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self.as_ref().map_or(0, Bytes::len)
    }
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_buffer()
    }
}

impl Record for String {
    const MIN_LEN: usize = 4;
    fn encode<B: BufMut>(&self, out: &mut B) {
        put_len(out, crate::utf8::encoded_len(self));
        crate::utf8::encode(self, out);
    }
    fn encoded_len(&self) -> usize {
        4 + crate::utf8::encoded_len(self)
    }
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_string()
    }
}

impl Record for Option<String> {
    const MIN_LEN: usize = 4;
    fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            None => out.put_i32(-1),
            Some(s) => s.encode(out),
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self.as_ref().map_or(0, |s| crate::utf8::encoded_len(s))
    }
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_opt_string()
    }
}

impl<T: Record> Record for Option<Vec<T>> {
    const MIN_LEN: usize = 4;
    fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            None => out.put_i32(-1),
            Some(items) => {
                put_len(out, items.len());
                items.iter().for_each(|item| item.encode(out));
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self
            .as_ref()
            .map_or(0, |items| items.iter().map(T::encoded_len).sum())
    }
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.read_vec()
    }
}

/// Two records back to back, as a frame holds a header and a body.
impl<A: Record, B2: Record> Record for (A, B2) {
    const MIN_LEN: usize = A::MIN_LEN + B2::MIN_LEN;
    fn encode<B: BufMut>(&self, out: &mut B) {
        self.0.encode(out);
        self.1.encode(out);
    }
    fn encoded_len(&self) -> usize {
        self.0.encoded_len() + self.1.encoded_len()
    }
    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok((A::decode(r)?, B2::decode(r)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_big_endian() {
        assert_eq!(to_bytes(&0x0102_0304_i32)[..], [1, 2, 3, 4]);
        assert_eq!(
            to_bytes(&-2_i64)[..],
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]
        );
        assert_eq!(to_bytes(&true)[..], [1]);
        assert_eq!(to_bytes(&None::<Bytes>)[..], [0xff; 4]);
        assert_eq!(
            to_bytes(&"hé".to_string())[..],
            [0, 0, 0, 3, b'h', 0xc3, 0xa9]
        );
    }

    #[test]
    fn any_nonzero_byte_is_true() {
        assert_eq!(from_bytes::<bool>(vec![7]), Ok(true));
    }

    #[test]
    fn buffers_are_slices_of_the_input() {
        let input = Bytes::from_static(&[0, 0, 0, 2, 9, 8]);
        let buf = from_bytes::<Option<Bytes>>(input.clone()).unwrap().unwrap();
        assert_eq!(buf.as_ptr(), input[4..].as_ptr());
    }

    #[test]
    fn lying_lengths_are_refused_before_allocating() {
        let err = from_bytes::<Option<Bytes>>(vec![0x7f, 0xff, 0xff, 0xff, 1]).unwrap_err();
        let kind = DecodeErrorKind::LengthTooLarge {
            length: i32::MAX,
            remaining: 1,
        };
        assert_eq!(err, DecodeError::new(kind, 0));
        // A billion-element vector of longs in 12 bytes of input.
        let err = from_bytes::<Option<Vec<i64>>>(vec![0x3b, 0x9a, 0xca, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(
            err.unwrap_err().kind,
            DecodeErrorKind::LengthTooLarge { .. }
        ));
    }

    #[test]
    fn null_and_negative_lengths() {
        assert_eq!(from_bytes::<Option<String>>(vec![0xff; 4]), Ok(None));
        assert_eq!(from_bytes::<String>(vec![0xff; 4]), Ok(String::new()));
        let err = from_bytes::<String>(vec![0xff, 0xff, 0xff, 0xfe]).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::NegativeLength(-2));
    }

    #[test]
    fn invalid_utf8_is_replaced_as_zookeeper_does() {
        let decoded = from_bytes::<String>(vec![0, 0, 0, 2, b'a', 0xff]);
        assert_eq!(decoded.unwrap(), "a\u{fffd}");
    }

    #[test]
    fn trailing_bytes_are_an_error_for_whole_records() {
        let err = from_bytes::<i32>(vec![0, 0, 0, 1, 2]).unwrap_err();
        assert_eq!(err, DecodeError::new(DecodeErrorKind::TrailingBytes(1), 4));
    }

    #[test]
    fn optional_trailing_bool() {
        assert_eq!(
            from_bytes::<(i32, Option<bool>)>(vec![0, 0, 0, 1]),
            Ok((1, None))
        );
        assert_eq!(
            from_bytes::<(i32, Option<bool>)>(vec![0, 0, 0, 1, 1]),
            Ok((1, Some(true)))
        );
    }
}
