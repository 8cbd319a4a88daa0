//! The four-letter-word reports, in ZooKeeper's text shape.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use crate::WatcherId;

/// The numbers `wchs` prints (`WatchesSummary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchesSummary {
    /// Connections that have set a watch in the table since they connected.
    pub connections: usize,
    /// Paths with at least one watch.
    pub paths: usize,
    /// (path, connection) pairs with a watch.
    pub total_watches: usize,
}

impl fmt::Display for WatchesSummary {
    /// `wchs`'s text without its final newline:
    /// `"<n> connections watching <m> paths\nTotal watches:<t>"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections watching {} paths\nTotal watches:{}",
            self.connections, self.paths, self.total_watches
        )
    }
}

/// `wchc`'s text for a [`by_watcher`](crate::WatchManager::by_watcher) report: each
/// connection's session id as `0x<hex>`, then its paths, one per line after a tab.
/// `session_of` maps a watcher to the session id the server prints for it.
pub fn format_by_connection(
    report: &BTreeMap<WatcherId, Vec<String>>,
    mut session_of: impl FnMut(WatcherId) -> i64,
) -> String {
    let mut out = String::new();
    for (watcher, paths) in report {
        let _ = writeln!(out, "0x{:x}", session_of(*watcher));
        for path in paths {
            let _ = writeln!(out, "\t{path}");
        }
    }
    out
}

/// `wchp`'s text for a [`by_path`](crate::WatchManager::by_path) report: each path, then
/// the session ids watching it, one per line as a tab and `0x<hex>`.
pub fn format_by_path(
    report: &BTreeMap<String, Vec<WatcherId>>,
    mut session_of: impl FnMut(WatcherId) -> i64,
) -> String {
    let mut out = String::new();
    for (path, watchers) in report {
        let _ = writeln!(out, "{path}");
        for watcher in watchers {
            let _ = writeln!(out, "\t0x{:x}", session_of(*watcher));
        }
    }
    out
}
