//! `zk-tools` against what Apache ZooKeeper 3.8.0's own tools printed for the same files
//! (golden files recorded by `cargo xtask record-tools` under `tests/tools/*/expected`):
//! a data directory ZooKeeper wrote and one our server wrote. Times print in UTC here,
//! as they were recorded; what differs from run to run (timings, the JSON timestamp, file
//! dates) is masked on both sides.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// The two data directories and their golden files.
fn sets() -> [(&'static str, PathBuf, PathBuf); 2] {
    let tools = root().join("tests/tools");
    [
        (
            "zookeeper",
            root().join("../persistence/tests/zk-datadir/version-2"),
            tools.join("zookeeper/expected"),
        ),
        (
            "ours",
            tools.join("ours/version-2"),
            tools.join("ours/expected"),
        ),
    ]
}

fn zk_tools(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zk-tools"))
        .args(args)
        .env("TZ", "UTC")
        .output()
        .expect("zk-tools runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Blanks what changes between runs: timings, the JSON timestamp, file dates.
fn mask(text: &str) -> String {
    text.lines()
        .map(|line| {
            if let Some(at) = line.find(" in ").filter(|_| line.ends_with(" seconds")) {
                let head = line.get(..at).unwrap_or_default();
                // "Deserialized snapshot in <file> in <t> seconds" keeps the file name.
                return match head.strip_prefix("Deserialized snapshot") {
                    Some(_) => {
                        let last = line.rfind(" in ").unwrap_or(at);
                        format!("{} in <t> seconds", line.get(..last).unwrap_or_default())
                    }
                    None => format!("{head} in <t> seconds"),
                };
            }
            if let Some(rest) = line.strip_prefix("Removing file: ") {
                return format!(
                    "Removing file: <date>\t{}",
                    rest.split('\t').nth(1).unwrap_or("")
                );
            }
            if let Some(at) = line.find("\"timestamp\":") {
                let digits = line.get(at + 12..).unwrap_or_default();
                let end = digits
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(digits.len());
                return format!(
                    "{}\"timestamp\":0{}",
                    line.get(..at).unwrap_or_default(),
                    digits.get(end..).unwrap_or_default()
                );
            }
            line.to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn expected_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    names
}

fn assert_same(set: &str, name: &str, ours: &str, theirs: &str) {
    let (ours, theirs) = (mask(ours), mask(theirs));
    if ours != theirs {
        let line = ours
            .lines()
            .zip(theirs.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(ours.lines().count().min(theirs.lines().count()));
        panic!(
            "{set}/{name}: zk-tools differs from ZooKeeper's tool at line {}:\n  ours:   {:?}\n  theirs: {:?}",
            line + 1,
            ours.lines().nth(line),
            theirs.lines().nth(line)
        );
    }
}

#[test]
fn dumps_and_formats_as_zookeeper_s_tools() {
    let mut compared = 0;
    for (set, version_dir, expected) in sets() {
        for name in expected_files(&expected) {
            let file = |n: &str| version_dir.join(n).display().to_string();
            let stem = name.trim_end_matches(".txt");
            let output = if let Some(log) = stem.strip_prefix("txnlog-") {
                zk_tools(&["txnlog", &file(log)])
            } else if let Some(snap) = stem.strip_prefix("snapshot-d-") {
                zk_tools(&["snapshot", "-d", &file(snap)])
            } else if let Some(snap) = stem.strip_prefix("snapshot-json-") {
                zk_tools(&["snapshot", "-json", &file(snap)])
            } else if let Some(snap) = stem.strip_prefix("snapshot-") {
                zk_tools(&["snapshot", &file(snap)])
            } else if let Some(pair) = stem.strip_prefix("compare-") {
                let (debug, pair) = match pair.strip_prefix("d-") {
                    Some(pair) => (true, pair),
                    None => (false, pair),
                };
                let (left, right) = pair.split_at(pair.rfind("-snapshot.").expect("two snapshots"));
                let (l, r) = (file(left), file(&right[1..]));
                let mut args = vec!["compare", "-l", &l, "-r", &r, "-b", "0", "-n", "0"];
                if debug {
                    args.push("-d");
                }
                zk_tools(&args)
            } else {
                continue;
            };
            assert!(output.status.success(), "{set}/{name}: {output:?}");
            let theirs = std::fs::read_to_string(expected.join(&name)).unwrap();
            assert_same(set, &name, &stdout(&output), &theirs);
            compared += 1;
        }
    }
    assert!(compared >= 40, "only {compared} golden files compared");
}

#[test]
fn chops_as_zookeeper_s_log_chopper() {
    for (set, version_dir, expected) in sets() {
        let name = expected_files(&expected)
            .into_iter()
            .find(|n| n.starts_with("chop-"))
            .expect("a chop golden file");
        let stem = name.trim_end_matches(".txt");
        let (log, zxid) = stem
            .strip_prefix("chop-")
            .and_then(|s| s.rsplit_once('-'))
            .expect("chop-<log>-<zxid>");
        let scratch = tempfile::tempdir().unwrap();
        let copy = scratch.path().join(log);
        std::fs::copy(version_dir.join(log), &copy).unwrap();
        let output = zk_tools(&["txnlog", "-c", "-z", zxid, copy.to_str().unwrap()]);
        assert!(output.status.success(), "{set}: {output:?}");
        let theirs = std::fs::read_to_string(expected.join(&name)).unwrap();
        assert_same(set, &name, &stdout(&output), &theirs);
        let decimal = i64::from_str_radix(zxid.trim_start_matches("0x"), 16).unwrap();
        let chopped =
            std::fs::read(scratch.path().join(format!("{log}.chopped{decimal}"))).unwrap();
        let golden = std::fs::read(expected.join(format!("{stem}.bin"))).unwrap();
        assert!(
            chopped == golden,
            "{set}: the chopped file differs from ZooKeeper's"
        );
    }
}

#[test]
fn cleans_up_as_purge_txn_log() {
    for (set, version_dir, expected) in sets() {
        let scratch = tempfile::tempdir().unwrap();
        let copy = scratch.path().join("version-2");
        std::fs::create_dir(&copy).unwrap();
        for entry in std::fs::read_dir(&version_dir).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
        let dir = scratch.path().to_str().unwrap();
        let output = zk_tools(&["cleanup", dir, "-n", "3"]);
        assert!(output.status.success(), "{set}: {output:?}");
        let mut lines: Vec<String> = stdout(&output)
            .lines()
            .map(|l| l.replace(dir, "<dir>"))
            .collect();
        lines.sort();
        let mut left: Vec<String> = std::fs::read_dir(&copy)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let ours = format!("{}\nkept: {}\n", lines.join("\n"), left.join(" "));
        let theirs = std::fs::read_to_string(expected.join("cleanup-3.txt")).unwrap();
        assert_same(set, "cleanup-3.txt", &ours, &theirs);
    }
}

/// The entries of a log file: (offset of the checksum, length) of each.
fn entries(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut at = 16;
    let mut found = Vec::new();
    while let Some(len) = bytes.get(at + 8..at + 12) {
        let len = i32::from_be_bytes(len.try_into().unwrap());
        if len <= 0 {
            break;
        }
        found.push((at, len as usize));
        at += 12 + len as usize + 1;
    }
    found
}

#[test]
fn digest_check_replays_both_data_directories() {
    for (set, version_dir, _) in sets() {
        let output = zk_tools(&["digest", version_dir.to_str().unwrap()]);
        let text = stdout(&output);
        assert!(output.status.success(), "{set}: {text}{output:?}");
        let last = text.lines().last().unwrap_or_default();
        assert!(last.starts_with("consistent: "), "{set}: {last}");
        assert!(
            !last.contains(" 0 logged digests"),
            "{set}: no digest compared: {last}"
        );
    }
}

#[test]
fn digest_check_catches_a_tampered_txn() {
    let (_, version_dir, _) = &sets()[1];
    let scratch = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(version_dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), scratch.path().join(entry.file_name())).unwrap();
    }
    // The newest log: its last entry's logged digest (the body's last 8 bytes) is changed
    // and the entry's checksum made right again, so that only the digest check can tell.
    let mut logs: Vec<(i64, PathBuf)> = zk_persistence::log_files(scratch.path()).unwrap();
    let (_, log) = logs.pop().unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    let (at, len) = *entries(&bytes).last().unwrap();
    let body = at + 12..at + 12 + len;
    bytes[body.end - 1] ^= 0x5a;
    let crc = i64::from(zk_persistence::adler32(&bytes[body]));
    bytes[at..at + 8].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&log, &bytes).unwrap();

    let output = zk_tools(&["digest", scratch.path().to_str().unwrap()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("digest mismatch at zxid"), "{text}");
}

#[test]
fn a_broken_checksum_is_shown_and_recovered() {
    let (_, version_dir, _) = &sets()[0];
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("log.1");
    std::fs::copy(version_dir.join("log.1"), &log).unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    let (at, _) = entries(&bytes)[3];
    bytes[at + 7] ^= 1;
    std::fs::write(&log, &bytes).unwrap();

    let dump = stdout(&zk_tools(&["txnlog", log.to_str().unwrap()]));
    let errors: Vec<&str> = dump
        .lines()
        .filter(|l| l.starts_with("CRC ERROR - "))
        .collect();
    assert_eq!(errors.len(), 1, "{dump}");
    // The entry is printed once more, as ZooKeeper does.
    let entry = errors[0].trim_start_matches("CRC ERROR - ");
    assert_eq!(dump.lines().filter(|l| *l == entry).count(), 1, "{dump}");

    let output = zk_tools(&["txnlog", "-r", "-y", log.to_str().unwrap()]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("CRC FIXED - "), "{text}");
    assert!(
        text.contains("has been written with 1 fixed CRC error(s)"),
        "{text}"
    );
    let fixed = zk_persistence::parse_file(&scratch.path().join("log.1.fixed")).unwrap();
    let original = zk_persistence::parse_file(&version_dir.join("log.1")).unwrap();
    assert_eq!(fixed.entries, original.entries);
}

#[test]
fn bad_invocations_fail_as_zookeeper_s_tools_do() {
    let output = zk_tools(&["txnlog", "/no/such/log.1"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "File doesn't exist or not readable: /no/such/log.1"
    );
    let output = zk_tools(&["txnlog"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("usage: TxnLogToolkit"));

    let dir = tempfile::tempdir().unwrap();
    let output = zk_tools(&["cleanup", dir.path().to_str().unwrap(), "-n", "2"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "count should be greater than or equal to 3"
    );
    let output = zk_tools(&["compare", "-l", "x"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "Missing required options: r, b, n"
    );
    let output = zk_tools(&["snapshot", "/no/such/snapshot.1"]);
    assert_eq!(output.status.code(), Some(1));
}
