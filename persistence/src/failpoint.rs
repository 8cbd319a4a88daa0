//! Disk faults on demand, for fault-injection runs only (cargo feature `failpoints`;
//! never enable it in a build that serves anyone). With the environment variable
//! `ZK_FAILPOINTS_FILE` naming a file, every commit of a [`FileTxnLog`](crate::FileTxnLog)
//! reads the fault in force from it (at most every 20 ms): nothing (an empty or missing
//! file), `slow-fsync <ms>` (each fsync takes that much longer), `fail-fsync` (fsync
//! fails, as on an I/O error) or `full-disk` (writes fail with `ENOSPC`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment variable naming the control file.
pub(crate) const ENV: &str = "ZK_FAILPOINTS_FILE";

/// How often the control file is read again.
const REFRESH: Duration = Duration::from_millis(20);

/// A disk fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// No fault.
    None,
    /// Each fsync takes this much longer.
    SlowFsync(Duration),
    /// fsync fails.
    FailFsync,
    /// Writes fail: no space left on the device.
    FullDisk,
}

/// What the control file says: `None` for anything it does not understand.
fn parse(text: &str) -> Fault {
    let mut words = text.split_whitespace();
    match (words.next(), words.next().and_then(|ms| ms.parse().ok())) {
        (Some("slow-fsync"), Some(ms)) => Fault::SlowFsync(Duration::from_millis(ms)),
        (Some("fail-fsync"), _) => Fault::FailFsync,
        (Some("full-disk"), _) => Fault::FullDisk,
        _ => Fault::None,
    }
}

static STATE: Mutex<Option<(Instant, Fault)>> = Mutex::new(None);

/// The fault in force now.
pub(crate) fn current() -> Fault {
    let Some(path) = std::env::var_os(ENV) else {
        return Fault::None;
    };
    let Ok(mut state) = STATE.lock() else {
        return Fault::None;
    };
    if let Some((read_at, fault)) = *state
        && read_at.elapsed() < REFRESH
    {
        return fault;
    }
    let fault = std::fs::read_to_string(path).map_or(Fault::None, |text| parse(&text));
    let before = state.map_or(Fault::None, |(_, f)| f);
    if fault != before {
        tracing::warn!(?fault, "the injected disk fault changed");
    }
    *state = Some((Instant::now(), fault));
    fault
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_file_names_the_fault() {
        assert_eq!(parse(""), Fault::None);
        assert_eq!(
            parse("slow-fsync 250\n"),
            Fault::SlowFsync(Duration::from_millis(250))
        );
        assert_eq!(parse("slow-fsync"), Fault::None);
        assert_eq!(parse("fail-fsync"), Fault::FailFsync);
        assert_eq!(parse("full-disk\n"), Fault::FullDisk);
        assert_eq!(parse("something else"), Fault::None);
    }
}
