//! The SIGKILL crash harness every `TxnLog` backend's crash test runs: a child process
//! appends through group commit and prints each zxid once durable; the parent kills it at
//! random moments, reopens the log and checks that every acknowledged entry is there, whole,
//! in order and without gaps.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zk_jute::txn::TxnHeader;
use zk_persistence::{GroupCommit, GroupOptions, LogEntry, TxnLog};

/// The body logged for `zxid`: its length and bytes both follow from the zxid.
fn body(zxid: i64) -> Vec<u8> {
    vec![(zxid % 251) as u8; 20 + (zxid % 200) as usize]
}

/// In the child (when `env` names a folder): appends forever with 64 in flight, printing
/// each zxid once it is durable. Does nothing in the parent.
pub(crate) fn child<L: TxnLog + Send + 'static>(env: &str, open: impl Fn(&Path) -> L) {
    let Ok(dir) = std::env::var(env) else {
        return;
    };
    let log = open(Path::new(&dir));
    let mut zxid = log.last_zxid();
    let writer = GroupCommit::start(log, GroupOptions::default());
    let mut stdout = std::io::stdout().lock();
    let mut in_flight = std::collections::VecDeque::new();
    loop {
        while in_flight.len() < 64 {
            zxid += 1;
            let header = TxnHeader {
                client_id: 1,
                cxid: 0,
                zxid,
                time: 0,
                r#type: 5,
            };
            in_flight.push_back((
                zxid,
                writer.append(LogEntry::new(header, &body(zxid), None)),
            ));
        }
        let (done, completion) = in_flight.pop_front().unwrap();
        completion.wait().expect("durable");
        writeln!(stdout, "{done}").unwrap();
        stdout.flush().unwrap();
    }
}

/// In the parent: runs the test `child_test` of this test binary as the child `kills` times
/// over one folder, killing it after 5..45 ms, and checks the log `open` finds after each
/// kill. With `after_open`, each child is first given time to acknowledge something, so
/// that no kill lands while the log is still opening.
pub(crate) fn kill_repeatedly<L: TxnLog>(
    env: &str,
    child_test: &str,
    kills: u64,
    after_open: bool,
    open: impl Fn(&Path) -> L,
) {
    if std::env::var(env).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut acknowledged_max = 0_i64;
    for kill in 0..kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run_for = Duration::from_millis(5 + seed % 40);
        let mut child = Command::new(&exe)
            .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
            .env(env, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut max = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(zxid) = line.parse::<i64>() {
                    if max.is_none() {
                        let _ = first_tx.send(());
                    }
                    max = max.max(Some(zxid));
                }
            }
            max
        });
        if after_open {
            let _ = first_rx.recv_timeout(Duration::from_secs(10));
        }
        let started = Instant::now();
        while started.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Some(max) = reader.join().unwrap() {
            acknowledged_max = acknowledged_max.max(max);
        }

        // Printed before opening, so that a failing open says which kill it followed.
        eprintln!("kill {kill}: after {run_for:?}, waited for an acknowledgement: {after_open}");
        let log = open(dir.path());
        let entries = log
            .read_from(1)
            .unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        let zxids: Vec<i64> = entries.iter().map(LogEntry::zxid).collect();
        let expected: Vec<i64> = (1..=zxids.len() as i64).collect();
        assert_eq!(
            zxids, expected,
            "kill {kill}: entries are whole, ordered and gapless"
        );
        assert_eq!(
            log.last_zxid(),
            zxids.len() as i64,
            "kill {kill}: last zxid"
        );
        assert!(
            zxids.len() as i64 >= acknowledged_max,
            "kill {kill}: acknowledged up to {acknowledged_max}, found {}",
            zxids.len()
        );
        for entry in &entries {
            assert_eq!(
                entry.body,
                body(entry.zxid()),
                "kill {kill}: zxid {} intact",
                entry.zxid()
            );
        }
    }
    assert!(acknowledged_max > 0, "the children acknowledged nothing");
}
