//! Typed decoding errors: what went wrong, and where in the input.

use std::fmt;

/// Why a decode failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ended while `needed` more bytes were expected.
    UnexpectedEof {
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A length prefix was negative and not the null marker `-1`.
    NegativeLength(i32),
    /// A length prefix claims more bytes (or elements) than the input can hold.
    LengthTooLarge {
        /// The claimed length.
        length: i32,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A whole record was expected to end here, yet bytes remain.
    TrailingBytes(usize),
    /// A number that must name an opcode does not.
    UnknownOpCode(i32),
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEof { needed, remaining } => {
                write!(
                    f,
                    "unexpected end of input: needed {needed} bytes, {remaining} left"
                )
            }
            Self::NegativeLength(len) => write!(f, "negative length {len}"),
            Self::LengthTooLarge { length, remaining } => {
                write!(f, "length {length} exceeds the {remaining} bytes left")
            }
            Self::TrailingBytes(n) => write!(f, "{n} unexpected trailing bytes"),
            Self::UnknownOpCode(op) => write!(f, "unknown opcode {op}"),
        }
    }
}

/// A decoding failure: the [kind](DecodeErrorKind), the byte offset in the input where the
/// failing field starts, and the innermost record field being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DecodeError {
    /// What went wrong.
    pub kind: DecodeErrorKind,
    /// Offset in bytes from the start of the decoded input.
    pub offset: usize,
    /// The innermost `Record.field` being decoded, when known.
    pub field: Option<(&'static str, &'static str)>,
}

impl DecodeError {
    /// An error of `kind` at `offset`, not yet attributed to a field.
    pub fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        Self {
            kind,
            offset,
            field: None,
        }
    }

    /// Attributes the error to `record.field` unless a more specific field already claimed it.
    #[must_use]
    pub fn in_field(mut self, record: &'static str, field: &'static str) -> Self {
        if self.field.is_none() {
            self.field = Some((record, field));
        }
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)?;
        if let Some((record, field)) = self.field {
            write!(f, " in {record}.{field}")?;
        }
        Ok(())
    }
}
