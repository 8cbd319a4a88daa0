//! What the log benchmarks share: the raw fsync probe, the group-commit load with N
//! appenders, the 1M-txn restore, and the table they print.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use zk_jute::txn::TxnHeader;
use zk_persistence::{GroupCommit, GroupOptions, LogEntry, TxnLog};

/// Bytes of each txn record (the entry adds its 28-byte header).
pub(crate) const TXN_BYTES: usize = 100;
/// Appenders of each load.
pub(crate) const APPENDERS: [usize; 3] = [1, 16, 256];
/// How long each load is measured (after a short warm-up).
pub(crate) const LOAD_TIME: Duration = Duration::from_secs(2);
const WARM_UP: Duration = Duration::from_millis(300);
/// Pause after each load, so that what a backend leaves behind (sled's background flushes,
/// deleting the folder) does not slow the next one.
const SETTLE: Duration = Duration::from_millis(500);
/// Txns of the restore benchmark.
pub(crate) const RESTORE_TXNS: i64 = 1_000_000;

/// A 100-byte txn at `zxid`.
pub(crate) fn entry(zxid: i64) -> LogEntry {
    let header = TxnHeader {
        client_id: 0x100,
        cxid: zxid as i32,
        zxid,
        time: 1_700_000_000_000,
        r#type: 5,
    };
    LogEntry::new(header, &[b't'; TXN_BYTES], None)
}

/// The `q` quantile (0..=1) of sorted samples.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Raw disk: append 100 bytes to a file and fdatasync it, `samples` times. Prints and
/// returns (median, p99).
pub(crate) fn raw_fsync(dir: &Path, samples: usize) -> (Duration, Duration) {
    println!("raw fsync: {samples} × (write 100 bytes + fdatasync)");
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).expect("probe file");
    let mut took = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        file.write_all(&[b'x'; 100]).expect("write");
        file.sync_data().expect("fdatasync");
        took.push(started.elapsed());
    }
    took.sort();
    let (median, p99) = (quantile(&took, 0.5), quantile(&took, 0.99));
    println!("raw fsync: median {}, p99 {}", micros(median), micros(p99));
    std::fs::remove_file(&path).expect("remove probe");
    (median, p99)
}

/// What one load measured.
#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) backend: &'static str,
    pub(crate) force_sync: bool,
    pub(crate) appenders: usize,
    pub(crate) appends_per_s: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    /// Entries per commit (per fsync when `force_sync` is on).
    pub(crate) per_commit: f64,
}

impl Load {
    /// Whether `other` measured the same backend, forceSync and appenders.
    fn matches(&self, other: &Load) -> bool {
        (self.backend, self.force_sync, self.appenders)
            == (other.backend, other.force_sync, other.appenders)
    }
}

/// `appenders` threads append 100-byte txns through `writer`, each waiting for its
/// completion before the next append, for [`LOAD_TIME`] after a warm-up. Zxids are handed
/// out under a lock together with the append, as a leader orders txns.
pub(crate) fn load(
    backend: &'static str,
    force_sync: bool,
    writer: GroupCommit,
    appenders: usize,
) -> Load {
    let writer = Arc::new(writer);
    let next = Arc::new(Mutex::new(1_i64));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let window = (started + WARM_UP, started + WARM_UP + LOAD_TIME);
    let threads: Vec<_> = (0..appenders)
        .map(|_| {
            let (writer, next, stop) = (writer.clone(), next.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut took = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let completion = {
                        let mut next = next.lock().expect("zxid lock");
                        let zxid = *next;
                        *next += 1;
                        writer.append(entry(zxid))
                    };
                    completion.wait().expect("durable");
                    if at >= window.0 && at < window.1 {
                        took.push(at.elapsed());
                    }
                }
                took
            })
        })
        .collect();
    std::thread::sleep(window.0.saturating_duration_since(Instant::now()));
    let stats = writer.stats();
    let before = (
        stats.commits.load(Ordering::Relaxed),
        stats.entries.load(Ordering::Relaxed),
    );
    std::thread::sleep(window.1.saturating_duration_since(Instant::now()));
    let after = (
        stats.commits.load(Ordering::Relaxed),
        stats.entries.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    let mut took: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("appender"))
        .collect();
    took.sort();
    let commits = (after.0 - before.0).max(1);
    let result = Load {
        backend,
        force_sync,
        appenders,
        appends_per_s: took.len() as f64 / LOAD_TIME.as_secs_f64(),
        p50: quantile(&took, 0.5),
        p99: quantile(&took, 0.99),
        per_commit: (after.1 - before.1) as f64 / commits as f64,
    };
    match Arc::try_unwrap(writer) {
        Ok(writer) => writer.shutdown(),
        Err(_) => unreachable!("appenders have stopped"),
    }
    println!("  {}", row(&result));
    result
}

/// The table's header.
pub(crate) fn header() -> String {
    format!(
        "{:<6} {:<10} {:>9} {:>12} {:>10} {:>10} {:>13}",
        "log", "forceSync", "appenders", "appends/s", "p50", "p99", "writes/commit"
    )
}

/// One line of the table.
pub(crate) fn row(l: &Load) -> String {
    format!(
        "{:<6} {:<10} {:>9} {:>12.0} {:>10} {:>10} {:>13.1}",
        l.backend,
        if l.force_sync { "on" } else { "off" },
        l.appenders,
        l.appends_per_s,
        micros(l.p50),
        micros(l.p99),
        l.per_commit
    )
}

/// A backend under load: its name, and how to start a group-committed log of it in a folder
/// with forceSync on or off.
pub(crate) type Backend = (&'static str, Box<dyn Fn(&Path, bool) -> GroupCommit>);

/// Starts a [`GroupCommit`] over whatever `open` opens.
pub(crate) fn backend<L: TxnLog + Send + 'static>(
    name: &'static str,
    open: impl Fn(&Path, bool) -> L + 'static,
) -> Backend {
    (
        name,
        Box::new(move |dir, force_sync| {
            GroupCommit::start(open(dir, force_sync), GroupOptions::default())
        }),
    )
}

fn median_by<T: Copy + PartialOrd>(runs: &[Load], f: impl Fn(&Load) -> T) -> T {
    let mut values: Vec<T> = runs.iter().map(f).collect();
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

/// Runs every load (forceSync on and off, each appender count, each backend in turn on a
/// fresh folder, so that backends see the same conditions) `rounds` times, then prints the
/// table of medians (each column's median over the rounds).
pub(crate) fn loads(backends: &[Backend], rounds: usize) -> Vec<Load> {
    let mut runs: Vec<Vec<Load>> = Vec::new();
    for round in 1..=rounds {
        for force_sync in [true, false] {
            for appenders in APPENDERS {
                // Backends take turns, in reverse order every other round.
                let order: Vec<&Backend> = if round % 2 == 1 {
                    backends.iter().collect()
                } else {
                    backends.iter().rev().collect()
                };
                for (name, start) in order {
                    println!(
                        "{name}: group commit, forceSync {}, {appenders} appenders, {} s \
                         (round {round} of {rounds})",
                        if force_sync { "on" } else { "off" },
                        LOAD_TIME.as_secs()
                    );
                    let dir = tempfile::tempdir().expect("temp dir");
                    let result = load(name, force_sync, start(dir.path(), force_sync), appenders);
                    drop(dir);
                    std::thread::sleep(SETTLE);
                    match runs.iter_mut().find(|r| r[0].matches(&result)) {
                        Some(same) => same.push(result),
                        None => runs.push(vec![result]),
                    }
                }
            }
        }
    }
    let results: Vec<Load> = runs
        .iter()
        .map(|runs| Load {
            backend: runs[0].backend,
            force_sync: runs[0].force_sync,
            appenders: runs[0].appenders,
            appends_per_s: median_by(runs, |l| l.appends_per_s),
            p50: median_by(runs, |l| l.p50),
            p99: median_by(runs, |l| l.p99),
            per_commit: median_by(runs, |l| l.per_commit),
        })
        .collect();
    println!(
        "\n{} (median of {rounds} round{})",
        header(),
        if rounds == 1 { "" } else { "s" }
    );
    for result in &results {
        println!("{}", row(result));
    }
    println!();
    results
}

/// What one append and commit cost the backend itself, forceSync off, called directly on
/// one thread (no group commit, no thread hand-off): the floor under the forceSync-off loads.
pub(crate) fn direct<L: TxnLog>(backend: &str, mut log: L) {
    const N: i64 = 100_000;
    let started = Instant::now();
    for zxid in 1..=N {
        log.append(&entry(zxid)).expect("append");
        log.commit().expect("commit");
    }
    println!(
        "{backend}: append + commit called directly (forceSync off): {:.1} µs each",
        started.elapsed().as_secs_f64() * 1e6 / N as f64
    );
}

/// Bytes allocated on disk under `path` (files and folders, recursively).
pub(crate) fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            total += disk_usage(&entry.path());
        }
    }
    total
}

/// What a restore rebuilds here: a count and a checksum of the bodies.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    txns: u64,
    bytes: u64,
}

/// Writes [`RESTORE_TXNS`] txns into the log at `dir` (committing every 10,000), and prints
/// how long that took and what it takes on disk.
pub(crate) fn fill<L: TxnLog>(backend: &str, dir: &Path, mut log: L) {
    println!("{backend}: restore: writing {RESTORE_TXNS} txns of {TXN_BYTES} bytes");
    let started = Instant::now();
    for zxid in 1..=RESTORE_TXNS {
        log.append(&entry(zxid)).expect("append");
        if zxid % 10_000 == 0 {
            log.commit().expect("commit");
        }
    }
    log.commit().expect("commit");
    drop(log);
    println!(
        "{backend}: restore: written in {:.1} s, {} MiB on disk",
        started.elapsed().as_secs_f64(),
        disk_usage(dir) >> 20
    );
}

/// Criterion: opening the log at `dir`, reading its txns (`read_from(1)`, as a restore
/// without a snapshot does) and applying them to a [`Tally`].
pub(crate) fn restore_bench<L: TxnLog>(
    c: &mut Criterion,
    backend: &str,
    dir: &Path,
    open: impl Fn(&Path) -> L,
) {
    println!("{backend}: restore: timing open + read_from(1) + apply of {RESTORE_TXNS} txns");
    let mut group = c.benchmark_group(format!("{backend}_restore"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(RESTORE_TXNS as u64));
    group.bench_function("1M_txns", |b| {
        b.iter_batched(
            || (),
            |()| {
                let log = open(dir);
                let entries = log.read_from(1).expect("log reads");
                let mut tally = Tally::default();
                for entry in &entries {
                    tally.txns += 1;
                    tally.bytes += entry.body.len() as u64;
                }
                assert_eq!(tally.txns, RESTORE_TXNS as u64);
                (tally, entries)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}
