//! Progress on stderr for large inputs: at most one line a second, only once a tool has
//! run for a second, so small files print nothing but their output.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Reports how far through `total` units (bytes, nodes) a tool is.
pub(crate) struct Progress {
    what: &'static str,
    total: u64,
    started: Instant,
    last: Instant,
    shown: bool,
    terminal: bool,
}

impl Progress {
    /// Progress through `total` units of `what` (`"bytes"`, `"znodes"`).
    pub(crate) fn new(what: &'static str, total: u64) -> Self {
        let now = Instant::now();
        Self {
            what,
            total,
            started: now,
            last: now,
            shown: false,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Notes that `done` units are done; prints when a second has passed since the last.
    pub(crate) fn at(&mut self, done: u64) {
        if self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let percent = done
            .saturating_mul(100)
            .checked_div(self.total)
            .unwrap_or(100);
        let line = format!(
            "{percent:>3}% ({done} of {} {}, {:.0?})",
            self.total,
            self.what,
            self.started.elapsed()
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    /// Ends the report: a last line if any was shown.
    pub(crate) fn done(&mut self) {
        if self.shown {
            let end = if self.terminal { "\r" } else { "" };
            eprintln!(
                "{end}100% ({} {}, {:.1?})",
                self.total,
                self.what,
                self.started.elapsed()
            );
        }
    }
}
