//! The TCP framing of the client protocol: a 4-byte big-endian length, then that many bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::archive::Record;

/// ZooKeeper's default `jute.maxbuffer`: the largest frame body accepted, in bytes.
pub const DEFAULT_MAX_FRAME_LEN: usize = 0xfffff;

const PREFIX_LEN: usize = 4;

/// Why a frame was refused. After any of these the connection must be closed: the stream
/// can no longer be trusted to be in step.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is negative.
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    /// The length prefix exceeds the configured maximum (`jute.maxbuffer`).
    #[error("frame length {length} exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The claimed or actual length.
        length: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The underlying transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A [`Decoder`]/[`Encoder`] for length-prefixed frames.
///
/// Decoding yields each frame's body as [`Bytes`] (a zero-copy split of the read buffer),
/// ready for [`Reader`](crate::Reader). Encoding takes any [`Record`] (a header and body
/// pair is a record too) and writes its length and bytes.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameCodec {
    /// A codec refusing frames whose body is longer than `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Self {
        Self { max_frame_len }
    }

    /// The largest body accepted.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(prefix) = src.first_chunk::<PREFIX_LEN>() else {
            return Ok(None);
        };
        let length = i32::from_be_bytes(*prefix);
        let len = usize::try_from(length).map_err(|_| FrameError::NegativeLength(length))?;
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge {
                length: len,
                max: self.max_frame_len,
            });
        }
        if src.len() < PREFIX_LEN + len {
            src.reserve(PREFIX_LEN + len - src.len());
            return Ok(None);
        }
        src.advance(PREFIX_LEN);
        Ok(Some(src.split_to(len).freeze()))
    }
}

impl<R: Record> Encoder<R> for FrameCodec {
    type Error = FrameError;

    /// Writes `record` as one frame. Outgoing frames are not held to the maximum, as
    /// ZooKeeper's server does not limit its replies; only lengths jute cannot express fail.
    fn encode(&mut self, record: R, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = record.encoded_len();
        let length = i32::try_from(len).map_err(|_| FrameError::TooLarge {
            length: len,
            max: i32::MAX as usize,
        })?;
        dst.reserve(PREFIX_LEN + len);
        dst.put_i32(length);
        record.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::proto::{GetDataRequest, RequestHeader};

    #[test]
    fn frames_round_trip_in_pieces() {
        let mut codec = FrameCodec::default();
        let mut wire = BytesMut::new();
        let header = RequestHeader { xid: 1, r#type: 4 };
        let body = GetDataRequest {
            path: "/a".into(),
            watch: true,
        };
        codec.encode((header, body), &mut wire).unwrap();
        codec
            .encode(
                (
                    RequestHeader {
                        xid: -2,
                        r#type: 11,
                    },
                    0_i32,
                ),
                &mut wire,
            )
            .unwrap();
        assert_eq!(wire[..4], [0, 0, 0, 15]);

        // Arrives one byte at a time.
        let mut src = BytesMut::new();
        let mut frames = Vec::new();
        for byte in wire {
            src.put_u8(byte);
            while let Some(frame) = codec.decode(&mut src).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].len(), 15);
        assert_eq!(
            frames[1][..],
            [0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11, 0, 0, 0, 0]
        );
    }

    #[test]
    fn oversized_and_negative_lengths_are_refused_at_once() {
        let mut codec = FrameCodec::new(16);
        let mut src = BytesMut::from(&[0, 0, 0, 17][..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(FrameError::TooLarge {
                length: 17,
                max: 16
            })
        ));
        let mut src = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(FrameError::NegativeLength(-1))
        ));
    }
}
