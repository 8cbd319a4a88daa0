//! Znode paths: ZooKeeper's validation rules and parent/child splitting.

use std::fmt;

/// Why a path is not a valid znode path (ZooKeeper's `PathUtils.validatePath`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty.
    #[error("path length must be > 0")]
    Empty,
    /// The path does not start with `/`.
    #[error("path must start with / character")]
    NotAbsolute,
    /// The path ends with `/` (and is not the root).
    #[error("path must not end with / character")]
    TrailingSlash,
    /// A character ZooKeeper refuses, at this character index.
    #[error("invalid path: {reason} @{index}")]
    Invalid {
        /// What is wrong.
        reason: InvalidReason,
        /// The index (in UTF-16 units, as ZooKeeper reports it) of the offending character.
        index: usize,
    },
}

/// The kinds of invalid characters and sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// A NUL character.
    NullCharacter,
    /// Two slashes in a row.
    EmptyNodeName,
    /// A `.` or `..` path component.
    RelativePath,
    /// A control, surrogate, private-use or special character.
    InvalidCharacter,
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NullCharacter => "null character not allowed",
            Self::EmptyNodeName => "empty node name specified",
            Self::RelativePath => "relative paths not allowed",
            Self::InvalidCharacter => "invalid character",
        })
    }
}

/// Whether ZooKeeper refuses this UTF-16 unit in a path.
fn is_invalid_unit(c: u16) -> bool {
    matches!(c, 0x01..=0x1f | 0x7f..=0x9f | 0xd800..=0xf8ff | 0xfff0..=0xffff)
}

/// Validates `path` exactly as ZooKeeper's `PathUtils.validatePath` does. ZooKeeper works on
/// UTF-16 units, so a character outside the Basic Multilingual Plane (two surrogate units)
/// is refused, as there.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    let units: Vec<u16> = path.encode_utf16().collect();
    match units.as_slice() {
        [] => return Err(PathError::Empty),
        [first, ..] if *first != u16::from(b'/') => return Err(PathError::NotAbsolute),
        [_] => return Ok(()),
        [.., last] if *last == u16::from(b'/') => return Err(PathError::TrailingSlash),
        _ => {}
    }
    let (slash, dot) = (u16::from(b'/'), u16::from(b'.'));
    let at = |i: usize| units.get(i).copied();
    for index in 1..units.len() {
        let (c, last) = (units.get(index).copied().unwrap_or(0), at(index - 1));
        let component_ends = matches!(at(index + 1), None | Some(0x2f));
        let reason = if c == 0 {
            Some(InvalidReason::NullCharacter)
        } else if c == slash && last == Some(slash) {
            Some(InvalidReason::EmptyNodeName)
        } else if c == dot && last == Some(dot) {
            let starts = index >= 2 && at(index - 2) == Some(slash);
            (starts && component_ends).then_some(InvalidReason::RelativePath)
        } else if c == dot {
            (last == Some(slash) && component_ends).then_some(InvalidReason::RelativePath)
        } else if is_invalid_unit(c) {
            Some(InvalidReason::InvalidCharacter)
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(PathError::Invalid { reason, index });
        }
    }
    Ok(())
}

/// Splits a path into its parent and last component: `/a/b` gives `("/a", "b")`, `/a`
/// gives `("", "a")` (the root's key is the empty string, as in ZooKeeper's tree).
/// `None` if the path has no `/`.
pub fn split(path: &str) -> Option<(&str, &str)> {
    path.rfind('/').map(|i| (&path[..i], &path[i + 1..]))
}

/// The path clients see for a parent key: the root's key `""` shows as `/`.
pub fn display_parent(parent: &str) -> &str {
    if parent.is_empty() { "/" } else { parent }
}

/// The tree key of a client path: `/` is the root, stored under `""`.
pub fn key(path: &str) -> &str {
    if path == "/" { "" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_path_rules() {
        for ok in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/..a",
            "/a/...",
            "/日本語",
            "/a b",
        ] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        let invalid = |reason, index| Err(PathError::Invalid { reason, index });
        assert_eq!(validate_path(""), Err(PathError::Empty));
        assert_eq!(validate_path("a"), Err(PathError::NotAbsolute));
        assert_eq!(validate_path("/a/"), Err(PathError::TrailingSlash));
        assert_eq!(
            validate_path("/a//b"),
            invalid(InvalidReason::EmptyNodeName, 3)
        );
        assert_eq!(
            validate_path("/a/./b"),
            invalid(InvalidReason::RelativePath, 3)
        );
        assert_eq!(
            validate_path("/a/.."),
            invalid(InvalidReason::RelativePath, 4)
        );
        assert_eq!(validate_path("/."), invalid(InvalidReason::RelativePath, 1));
        assert_eq!(
            validate_path("/a\0"),
            invalid(InvalidReason::NullCharacter, 2)
        );
        assert_eq!(
            validate_path("/a\u{1}"),
            invalid(InvalidReason::InvalidCharacter, 2)
        );
        assert_eq!(
            validate_path("/\u{1f980}"),
            invalid(InvalidReason::InvalidCharacter, 1)
        );
        assert_eq!(
            validate_path("/\u{fff5}"),
            invalid(InvalidReason::InvalidCharacter, 1)
        );
    }

    #[test]
    fn splitting() {
        assert_eq!(split("/a/b"), Some(("/a", "b")));
        assert_eq!(split("/a"), Some(("", "a")));
        assert_eq!(split("a"), None);
        assert_eq!(display_parent(""), "/");
    }
}
