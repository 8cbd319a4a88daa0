//! `zk-tools cleanup <dataLogDir> [<snapDir>] -n <count>`: ZooKeeper's `PurgeTxnLog`, as
//! `zkCleanup.sh` runs it. Keeps the `count` newest valid snapshots in
//! `snapDir/version-2` and the log files in `dataLogDir/version-2` that replaying from the
//! oldest of them needs (every log after it, and the last one starting at or before it);
//! deletes older snapshots and logs, printing `Removing file: <modified>\t<path>` for each.

use std::path::{Path, PathBuf};

use zk_persistence::VERSION_DIR;

use crate::javatext::medium;

const COUNT_ERR_MSG: &str = "count should be greater than or equal to 3";

fn usage() -> u8 {
    println!("Usage:");
    println!("PurgeTxnLog dataLogDir [snapDir] -n count");
    println!("\tdataLogDir -- path to the txn log directory");
    println!("\tsnapDir -- path to the snapshot directory");
    println!(
        "\tcount -- the number of old snaps/logs you want to keep, value should be greater than or equal to 3"
    );
    1
}

/// `validateAndGetFile`: the path must exist.
fn existing(path: &str) -> Option<PathBuf> {
    let file = PathBuf::from(path);
    if file.exists() {
        return Some(file);
    }
    let absolute = std::path::absolute(&file).unwrap_or(file);
    eprintln!("Path '{}' does not exist. ", absolute.display());
    None
}

/// `validateAndGetCount`.
fn count(number: &str) -> Option<usize> {
    match number.parse::<i32>() {
        Ok(n) if n >= 3 => usize::try_from(n).ok(),
        Ok(_) => {
            eprintln!("{COUNT_ERR_MSG}");
            None
        }
        Err(_) => {
            eprintln!("'{number}' can not be parsed to integer.");
            None
        }
    }
}

pub(crate) fn main(args: &[String]) -> u8 {
    let (log_parent, snap_parent, option, number) = match args {
        [log, option, number] => (log, log, option, number),
        [log, snap, option, number] => (log, snap, option, number),
        _ => return usage(),
    };
    let Some(log_parent) = existing(log_parent) else {
        return usage();
    };
    let Some(snap_parent) = existing(snap_parent) else {
        return usage();
    };
    let Some(retain) = count(number) else {
        return usage();
    };
    if option != "-n" {
        return usage();
    }
    match purge(
        &log_parent.join(VERSION_DIR),
        &snap_parent.join(VERSION_DIR),
        retain,
    ) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("zk-tools cleanup: {message}");
            1
        }
    }
}

/// `Util.getZxidFromName`: the hex after `<prefix>.` up to the next dot; -1 when the
/// name has another prefix or no number there.
fn zxid_from_name(name: &str, prefix: &str) -> i64 {
    let mut parts = name.split('.');
    if parts.next() != Some(prefix) {
        return -1;
    }
    parts.next().and_then(java_parse_hex).unwrap_or(-1)
}

/// `Long.parseLong(text, 16)`: an optional sign, then hex digits, within a long.
fn java_parse_hex(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, 16).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// The files of a directory (none if it does not exist), with their names.
fn files(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        files.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    files.sort();
    Ok(files)
}

/// `FileTxnSnapLog`'s checks when the two directories differ: neither holds the other's
/// files.
fn check_dirs(log_dir: &Path, snap_dir: &Path) -> Result<(), String> {
    if log_dir == snap_dir {
        return Ok(());
    }
    let has = |dir: &Path, prefix: &str| -> Result<bool, String> {
        Ok(files(dir)?.iter().any(|(name, _)| name.starts_with(prefix)))
    };
    if has(log_dir, "snapshot.")? {
        return Err("Log directory has snapshot files. Check if dataLogDir and dataDir configuration is correct.".into());
    }
    if has(snap_dir, "log.")? {
        return Err("Snapshot directory has log files. Check if dataLogDir and dataDir configuration is correct.".into());
    }
    Ok(())
}

fn purge(log_dir: &Path, snap_dir: &Path, retain: usize) -> Result<(), String> {
    // FileTxnSnapLog creates what is missing.
    for dir in [log_dir, snap_dir] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    check_dirs(log_dir, snap_dir)?;
    // findNValidSnapshots: the newest `retain` valid ones.
    let mut snapshots: Vec<(i64, PathBuf)> = files(snap_dir)?
        .into_iter()
        .filter(|(name, _)| name.starts_with("snapshot."))
        .map(|(name, path)| (zxid_from_name(&name, "snapshot"), path))
        .collect();
    snapshots.sort_by_key(|(zxid, _)| std::cmp::Reverse(*zxid));
    let kept: Vec<i64> = snapshots
        .iter()
        .filter(|(_, path)| zk_persistence::is_valid_snapshot(path))
        .take(retain)
        .map(|(zxid, _)| *zxid)
        .collect();
    let Some(&least) = kept.last() else {
        return Ok(());
    };
    // getSnapshotLogs: the logs from the newest one starting at or before `least` on.
    let logs: Vec<(i64, PathBuf)> = files(log_dir)?
        .into_iter()
        .filter(|(name, _)| name.starts_with("log."))
        .map(|(name, path)| (zxid_from_name(&name, "log"), path))
        .collect();
    let needed_from = logs
        .iter()
        .map(|(zxid, _)| *zxid)
        .filter(|zxid| *zxid <= least)
        .fold(0, i64::max);
    let mut doomed: Vec<&PathBuf> = logs
        .iter()
        .filter(|(zxid, _)| *zxid < needed_from && *zxid < least)
        .map(|(_, path)| path)
        .collect();
    doomed.extend(
        snapshots
            .iter()
            .filter(|(zxid, _)| *zxid < least)
            .map(|(_, path)| path),
    );
    for path in doomed {
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        println!("Removing file: {}\t{}", medium(modified), path.display());
        if std::fs::remove_file(path).is_err() {
            eprintln!("Failed to remove {}", path.display());
        }
    }
    Ok(())
}
