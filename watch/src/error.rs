//! The crate's one error type.

/// Why the watch manager refused a watch. Both are capacity limits of the compact form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// 2^26 watchers already hold watches (a watcher slot shares a `u32` with 6 bits of
    /// state).
    #[error("too many watchers: at most 2^26 may hold watches at once")]
    TooManyWatchers,
    /// 2^32 paths are already watched.
    #[error("too many watched paths: at most 2^32 at once")]
    TooManyPaths,
}
