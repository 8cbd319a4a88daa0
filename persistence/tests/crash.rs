//! Crash safety: a process appending through group commit is killed (SIGKILL) at random
//! moments, 100 times over one data folder. After each kill the log must open, hold every
//! entry whose completion had resolved, and hold nothing but whole entries, in zxid order
//! with no gap.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zk_jute::txn::TxnHeader;
use zk_persistence::{FileTxnLog, GroupCommit, GroupOptions, LogEntry, LogOptions, TxnLog};

const CHILD_ENV: &str = "ZK_PERSISTENCE_CRASH_DIR";
const KILLS: u64 = 100;

/// The child: appends forever, printing each zxid once it is durable.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let options = LogOptions {
        pre_alloc_size: 64 * 1024,
        ..LogOptions::default()
    };
    let log = FileTxnLog::open(&dir, options).expect("the log opens after a crash");
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
            let body = vec![(zxid % 251) as u8; 20 + (zxid % 200) as usize];
            in_flight.push_back((zxid, writer.append(LogEntry::new(header, &body, None))));
        }
        let (done, completion) = in_flight.pop_front().unwrap();
        completion.wait().expect("durable");
        writeln!(stdout, "{done}").unwrap();
        stdout.flush().unwrap();
    }
}

#[test]
fn killed_writers_lose_nothing_acknowledged() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut acknowledged_max = 0_i64;
    for kill in 0..KILLS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run_for = Duration::from_millis(5 + seed % 40);
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.parse::<i64>().ok())
                .max()
        });
        let started = Instant::now();
        while started.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Some(max) = reader.join().unwrap() {
            acknowledged_max = acknowledged_max.max(max);
        }

        let log = FileTxnLog::open(dir.path(), LogOptions::default())
            .unwrap_or_else(|e| panic!("kill {kill}: the log does not open: {e}"));
        let entries = log
            .read_from(1)
            .unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        let zxids: Vec<i64> = entries.iter().map(LogEntry::zxid).collect();
        let expected: Vec<i64> = (1..=zxids.len() as i64).collect();
        assert_eq!(
            zxids, expected,
            "kill {kill}: entries are whole, ordered and gapless"
        );
        assert!(
            zxids.len() as i64 >= acknowledged_max,
            "kill {kill}: acknowledged up to {acknowledged_max}, found {}",
            zxids.len()
        );
        for entry in &entries {
            let z = entry.zxid();
            assert_eq!(
                entry.body.len(),
                20 + (z % 200) as usize,
                "kill {kill}: zxid {z}"
            );
            assert!(
                entry.body.iter().all(|b| *b == (z % 251) as u8),
                "kill {kill}: zxid {z} intact"
            );
        }
    }
    assert!(acknowledged_max > 0, "the children acknowledged nothing");
}
