//! Znode path rules (ZooKeeper's `PathUtils.validatePath`) and the chroot of a connect
//! string.

use crate::error::{Error, Result};

/// Checks `path` as ZooKeeper's client does before sending anything: absolute, no
/// trailing `/` (except the root), no empty, `.` or `..` segment, no null or control
/// characters, no characters from U+007F–U+009F, U+D800–U+F8FF (which, as Java counts in
/// UTF-16, includes everything outside the Basic Multilingual Plane) or U+FFF0–U+FFFF.
/// Positions in the reasons are UTF-16 offsets, as Java reports them.
pub fn validate_path(path: &str) -> Result<()> {
    let fail = |reason: String| {
        Err(Error::InvalidPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return fail("path length must be > 0".into());
    }
    if !path.starts_with('/') {
        return fail("path must start with / character".into());
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return fail("path must not end with / character".into());
    }
    // Java walks UTF-16 units; a char outside the BMP is a surrogate pair there, and the
    // first unit of it (U+D800..) is already invalid.
    let units: Vec<u16> = path.encode_utf16().collect();
    let at = |i: usize| units.get(i).copied();
    for (i, (&last, &c)) in units.iter().zip(units.iter().skip(1)).enumerate() {
        let i = i + 1;
        let next_ends = matches!(at(i + 1), None | Some(0x2f));
        let reason = if c == 0 {
            "null character not allowed"
        } else if c == u16::from(b'/') && last == u16::from(b'/') {
            "empty node name specified"
        } else if c == u16::from(b'.') && last == u16::from(b'.') {
            if i >= 2 && at(i - 2) == Some(0x2f) && next_ends {
                "relative paths not allowed"
            } else {
                continue;
            }
        } else if c == u16::from(b'.') {
            if last == 0x2f && next_ends {
                "relative paths not allowed"
            } else {
                continue;
            }
        } else if (0x01..=0x1f).contains(&c)
            || (0x7f..=0x9f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || c >= 0xfff0
        {
            "invalid character"
        } else {
            continue;
        };
        return fail(format!("{reason} @{i}"));
    }
    Ok(())
}

/// Checks the path of a create: for sequential modes the server appends a counter, so a
/// trailing `/` is allowed (ZooKeeper's `validatePath(path, isSequential)`).
pub(crate) fn validate_create_path(path: &str, sequential: bool) -> Result<()> {
    if sequential {
        validate_path(&format!("{path}1")).map_err(|e| match e {
            Error::InvalidPath { reason, .. } => Error::InvalidPath {
                path: path.to_owned(),
                reason,
            },
            other => other,
        })
    } else {
        validate_path(path)
    }
}

/// A client's chroot: every path it sends is under it, every path it receives is
/// shown relative to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Chroot(Option<String>);

impl Chroot {
    /// `None` or `/` means no chroot.
    pub(crate) fn new(root: Option<String>) -> Self {
        Chroot(root.filter(|r| r != "/"))
    }

    pub(crate) fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The server's path for a client path (`ZooKeeper.prependChroot`).
    pub(crate) fn to_server(&self, path: &str) -> String {
        match &self.0 {
            Some(root) => zk_watch::server_path(root, path),
            None => path.to_owned(),
        }
    }

    /// The client's path for a server path (as `ClientCnxn` strips it).
    pub(crate) fn to_client(&self, path: &str) -> String {
        match &self.0 {
            Some(root) => zk_watch::client_path(root, path).to_owned(),
            None => path.to_owned(),
        }
    }

    /// Whether a server path is the chroot or below it.
    pub(crate) fn contains(&self, path: &str) -> bool {
        match &self.0 {
            None => true,
            Some(root) => {
                path == root
                    || path
                        .strip_prefix(root.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(path: &str) -> Option<String> {
        match validate_path(path) {
            Ok(()) => None,
            Err(Error::InvalidPath { reason, .. }) => Some(reason),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn paths_as_path_utils_judges_them() {
        for ok in [
            "/", "/a", "/a/b", "/a.b", "/..a", "/a..", "/.a/b", "/z\u{e9}",
        ] {
            assert_eq!(reason(ok), None, "{ok}");
        }
        let bad = [
            ("", "path length must be > 0"),
            ("a", "path must start with / character"),
            ("/a/", "path must not end with / character"),
            ("//a", "empty node name specified @1"),
            ("/a//b", "empty node name specified @3"),
            ("/.", "relative paths not allowed @1"),
            ("/a/./b", "relative paths not allowed @3"),
            ("/..", "relative paths not allowed @2"),
            ("/a/../b", "relative paths not allowed @4"),
            ("/a\0", "null character not allowed @2"),
            ("/a\u{1}", "invalid character @2"),
            ("/\u{7f}", "invalid character @1"),
            ("/\u{e000}", "invalid character @1"),
            ("/\u{1f600}", "invalid character @1"),
            ("/\u{fff0}", "invalid character @1"),
        ];
        for (path, why) in bad {
            assert_eq!(reason(path).as_deref(), Some(why), "{path:?}");
        }
        assert!(validate_create_path("/a/", true).is_ok());
        assert!(validate_create_path("/a/", false).is_err());
    }

    #[test]
    fn chroot_maps_both_ways() {
        let root = Chroot::new(Some("/app".into()));
        assert_eq!(root.to_server("/"), "/app");
        assert_eq!(root.to_server("/x"), "/app/x");
        assert_eq!(root.to_client("/app"), "/");
        assert_eq!(root.to_client("/app/x"), "/x");
        assert!(root.contains("/app/x") && root.contains("/app"));
        assert!(!root.contains("/apple") && !root.contains("/"));
        let none = Chroot::new(Some("/".into()));
        assert_eq!(none.to_server("/x"), "/x");
        assert_eq!(none.to_client("/x"), "/x");
    }
}
