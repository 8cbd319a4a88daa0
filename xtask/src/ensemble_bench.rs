//! `cargo xtask bench ensemble`: three-member ensembles of our server and of Apache
//! ZooKeeper 3.8.0 on this machine (each member a process on loopback, `forceSync` on),
//! one load generator (the `zookeeper-client` crate) on a single-threaded tokio runtime,
//! 100-byte values:
//!
//! - setData with 16 sessions × 16 outstanding, through the leader and through a
//!   follower; getData 16×16 through a follower; create p99 at 1×1 through a follower;
//!   create 16×16 through the leader and through a follower (last: they grow the tree);
//! - failover: SIGKILL the leader, time from the signal until a client on a surviving
//!   member completes a create (the client's own reconnect delays included);
//! - rejoin: a fresh ensemble with Z znodes loaded (and no others), a follower restarts
//!   with an empty disk; time until it serves again (a SNAP from the leader) and answers
//!   a read of the last znode.
//!
//! The two ensembles run one after the other, so each has the machine to itself. A debug
//! build re-runs itself from a release build, as `cargo xtask bench` does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use zookeeper_client as zk;

use crate::bench::{OPEN, Op, VALUE, Work, connect_many, create_all, delete_all, drive};
use crate::ensemble::{Kind, LocalEnsemble, four_letter_blocking};

const USAGE: &str = "cargo xtask bench ensemble [--secs S] [--warmup S] [--znodes Z] \
                     [--rest S] [--only ours|zookeeper] [--report FILE] [--keep]";

/// The targets, ours against Apache ZooKeeper's: `(key, what, higher is better,
/// target ratio)`; `{znodes}` in `what` stands for `--znodes`.
const ROWS: [(&str, &str, bool, f64); 9] = [
    ("create_leader", "create 16×16 via leader, ops/s", true, 3.0),
    (
        "create_follower",
        "create 16×16 via follower, ops/s",
        true,
        3.0,
    ),
    (
        "setdata_leader",
        "setData 16×16 via leader, ops/s",
        true,
        3.0,
    ),
    (
        "setdata_follower",
        "setData 16×16 via follower, ops/s",
        true,
        3.0,
    ),
    (
        "getdata_follower",
        "getData 16×16 via follower, ops/s",
        true,
        2.0,
    ),
    ("create_p99", "create p99 1×1 via follower, ms", false, 0.5),
    ("create_p50", "create p50 1×1 via follower, ms", false, 0.0),
    (
        "failover_ms",
        "failover: leader SIGKILLed → a write, ms",
        false,
        0.5,
    ),
    (
        "rejoin_ms",
        "rejoin by SNAP with {znodes} znodes, ms",
        false,
        0.5,
    ),
];

struct Options {
    secs: u64,
    warmup: u64,
    znodes: u64,
    /// Seconds the machine rests before each ensemble is started.
    rest: u64,
    kinds: Vec<Kind>,
    report: Option<PathBuf>,
    keep: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Options {
            secs: 5,
            warmup: 1,
            znodes: 1_000_000,
            rest: 30,
            kinds: vec![Kind::Ours, Kind::ZooKeeper],
            report: None,
            keep: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .with_context(|| format!("{arg} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--secs" => o.secs = value()?.parse().context("--secs")?,
                "--warmup" => o.warmup = value()?.parse().context("--warmup")?,
                "--znodes" => o.znodes = value()?.parse().context("--znodes")?,
                "--rest" => o.rest = value()?.parse().context("--rest")?,
                "--report" => o.report = Some(PathBuf::from(value()?)),
                "--keep" => o.keep = true,
                "--only" => {
                    o.kinds = match value()?.as_str() {
                        "ours" => vec![Kind::Ours],
                        "zookeeper" => vec![Kind::ZooKeeper],
                        other => bail!("--only {other}: ours or zookeeper\n{USAGE}"),
                    }
                }
                other => bail!("unknown option {other}\n{USAGE}"),
            }
        }
        Ok(o)
    }
}

fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Ours => "ours",
        Kind::ZooKeeper => "Apache ZooKeeper 3.8.0",
    }
}

/// `cargo xtask bench ensemble`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let target = crate::bench::target_dir()?;
    if !crate::bench::in_release_build(&["bench", "ensemble"], args)? {
        return Ok(());
    }
    let binary = target.join("release/zk-server");
    let scratch = target.join("bench-ensemble");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    // One thread drives the load (the client crate adds its own reactor thread): with
    // tokio's two workers, on these two cores, the generator spent its CPU in wake-ups
    // between its threads and fell behind ours, its replies left unread in its sockets.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut results: BTreeMap<(&'static str, &'static str), f64> = BTreeMap::new();
    for kind in &opts.kinds {
        let dir = scratch.join(match kind {
            Kind::Ours => "ours",
            Kind::ZooKeeper => "zookeeper",
        });
        rest(opts.rest);
        eprintln!("== {}: three members under {}", name(*kind), dir.display());
        let measured = runtime.block_on(bench_one(*kind, &dir, &binary, &opts))?;
        for (key, value) in measured {
            results.insert((name(*kind), key), value);
        }
    }
    let report = report(&opts, &results);
    println!("{report}");
    let path = opts
        .report
        .clone()
        .unwrap_or_else(|| target.join("bench-ensemble-report.md"));
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("report written to {}", path.display());
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(())
}

/// Lets the machine rest before an ensemble is measured, so that each starts from the same
/// state rather than from what ran before it (the other ensemble's files being written
/// out and deleted, a build, another run): `sync`, `secs` of rest, then up to a minute
/// more until the CPUs are 90% idle over a second. On this 2-core VM, ours measured right
/// after Apache ZooKeeper's ensemble ran, against after a `sync` and 30 s of rest, gave
/// 5-12% fewer writes in every phase.
fn rest(secs: u64) {
    if secs == 0 {
        return;
    }
    let _ = std::process::Command::new("sync").status();
    eprintln!("resting {secs} s before starting the ensemble");
    std::thread::sleep(Duration::from_secs(secs));
    let started = Instant::now();
    loop {
        let busy = cpu_busy(Duration::from_secs(1));
        if busy.is_none_or(|b| b < 0.1) {
            return;
        }
        if started.elapsed() > Duration::from_secs(60) {
            eprintln!(
                "the machine is still busy ({:.0}% of its CPUs); measuring anyway",
                100.0 * busy.unwrap_or(0.0)
            );
            return;
        }
    }
}

/// The share of all CPUs' time that was busy over `window` (from `/proc/stat`), if it
/// can be read.
fn cpu_busy(window: Duration) -> Option<f64> {
    fn ticks() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        Some((total, idle))
    }
    let (total0, idle0) = ticks()?;
    std::thread::sleep(window);
    let (total1, idle1) = ticks()?;
    let total = total1.checked_sub(total0)?;
    let idle = idle1.checked_sub(idle0)?;
    (total > 0).then(|| 1.0 - idle as f64 / total as f64)
}

/// Creates made, and deleted again, while warming up: a fixed count, so that both servers
/// are left with the same tree.
const WARMUP_CREATES: usize = 40_000;

/// Load before any measurement, of every kind measured: a JVM compiles its hot paths in
/// the first seconds of load, and with only each phase's own warmup Apache ZooKeeper's
/// first phases ran on a cold JVM (its creates at about half the rate they reach warm).
async fn warm_up(
    leader_clients: &[zk::Client],
    follower_clients: &[zk::Client],
    keys: &Arc<Vec<String>>,
) -> Result<()> {
    let started = Instant::now();
    for (op, clients) in [
        (Op::SetData, leader_clients),
        (Op::SetData, follower_clients),
        (Op::GetData, follower_clients),
    ] {
        let work = Arc::new(Work {
            op,
            keys: keys.clone(),
            prefix: String::new(),
            outstanding: 16,
        });
        drive(
            clients,
            16,
            work,
            Duration::ZERO,
            Duration::from_secs(2),
            false,
        )
        .await?;
    }
    let paths: Vec<String> = (0..WARMUP_CREATES)
        .map(|i| format!("/bench/w/n{i}"))
        .collect();
    create_all(&leader_clients[0], &["/bench/w".into()]).await?;
    for (clients, part) in [leader_clients, follower_clients]
        .into_iter()
        .zip(paths.chunks(WARMUP_CREATES / 2))
    {
        let share = part.len().div_ceil(clients.len());
        let mut tasks = Vec::new();
        for (client, chunk) in clients.iter().zip(part.chunks(share)) {
            let (client, chunk) = (client.clone(), chunk.to_vec());
            tasks.push(tokio::spawn(
                async move { create_all(&client, &chunk).await },
            ));
        }
        for task in tasks {
            task.await??;
        }
    }
    delete_all(leader_clients, paths).await?;
    eprintln!(
        "warmed up: setData, getData, {WARMUP_CREATES} creates and deletes in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Every measurement on one ensemble.
async fn bench_one(
    kind: Kind,
    dir: &Path,
    binary: &Path,
    opts: &Options,
) -> Result<Vec<(&'static str, f64)>> {
    let mut ensemble = LocalEnsemble::start(kind, 3, dir, Some(binary), "forceSync=yes")?;
    let leader = ensemble.wait_for_leader(Duration::from_secs(120))?;
    let follower = (leader + 1) % 3;
    let port = |i: usize| ensemble.addrs[i].port();
    let (leader_port, follower_port) = (port(leader), port(follower));
    eprintln!(
        "leader server.{}, measuring through server.{}",
        leader + 1,
        follower + 1
    );
    let setup = connect_many(leader_port, 1).await?;
    let keys: Vec<String> = (0..1000).map(|i| format!("/bench/k{i}")).collect();
    create_all(
        &setup[0],
        &[
            "/bench".into(),
            "/bench/cl".into(),
            "/bench/cf".into(),
            "/bench/f".into(),
            "/bench/p".into(),
        ],
    )
    .await?;
    create_all(&setup[0], &keys).await?;
    let keys = Arc::new(keys);
    let (warmup, window) = (
        Duration::from_secs(opts.warmup),
        Duration::from_secs(opts.secs),
    );
    let leader_clients = connect_many(leader_port, 16).await?;
    let follower_clients = connect_many(follower_port, 16).await?;
    warm_up(&leader_clients, &follower_clients, &keys).await?;
    let mut out = Vec::new();
    // The phases on the 1,000 keys come first, the 1×1 creates next: run after the 16×16
    // creates, each would meet a tree as large as its server was fast at creating (about
    // three times larger in ours than in Apache ZooKeeper), not the same tree for both.
    let on_keys: [(&str, Op, bool, &str); 3] = [
        ("setdata_leader", Op::SetData, true, ""),
        ("setdata_follower", Op::SetData, false, ""),
        ("getdata_follower", Op::GetData, false, ""),
    ];
    let creates: [(&str, Op, bool, &str); 2] = [
        ("create_leader", Op::Create, true, "/bench/cl"),
        ("create_follower", Op::Create, false, "/bench/cf"),
    ];
    let phase = |(key, op, via_leader, prefix): (&'static str, Op, bool, &str)| {
        let clients = if via_leader {
            &leader_clients
        } else {
            &follower_clients
        };
        let work = Arc::new(Work {
            op,
            keys: keys.clone(),
            prefix: prefix.into(),
            outstanding: 16,
        });
        async move {
            let sample = drive(clients, 16, work, warmup, window, false).await?;
            if sample.errors > 0 {
                bail!(
                    "{key}: {} errors, first: {}",
                    sample.errors,
                    sample.first_error.unwrap_or_default()
                );
            }
            eprintln!("{key}: {:.0} ops/s", sample.rate());
            Ok((key, sample.rate()))
        }
    };
    for run in on_keys {
        out.push(phase(run).await?);
    }
    let one = vec![follower_clients[0].clone()];
    let work = Arc::new(Work {
        op: Op::Create,
        keys: keys.clone(),
        // Names of its own: `seq` starts at 0 in every phase, and the 16×16 phase's worker
        // 0 would meet these under `/bench/cf`.
        prefix: "/bench/p".into(),
        outstanding: 1,
    });
    let sample = drive(&one, 1, work, warmup, window, true).await?;
    if sample.errors > 0 || sample.latencies.is_empty() {
        bail!(
            "create 1×1: {} errors, {} answers, first error: {}",
            sample.errors,
            sample.latencies.len(),
            sample.first_error.unwrap_or_default()
        );
    }
    let (p50, p99) = (
        sample.percentile(50) / 1000.0,
        sample.percentile(99) / 1000.0,
    );
    eprintln!("create 1×1 via follower: p50 {p50:.2} ms, p99 {p99:.2} ms");
    out.push(("create_p50", p50));
    out.push(("create_p99", p99));
    for run in creates {
        out.push(phase(run).await?);
    }
    drop((leader_clients, follower_clients, setup, one));

    // Failover: a client on a member that survives writes as soon as it can.
    let survivor = connect_many(follower_port, 1).await?.remove(0);
    survivor.create("/bench/f/before", &VALUE, OPEN).await?;
    // The clock starts at the signal, not once the leader's exit is seen.
    let killed = Instant::now();
    let dead_leader = ensemble.signal_kill(leader);
    let mut n = 0u64;
    loop {
        n += 1;
        match tokio::time::timeout(
            Duration::from_secs(5),
            survivor.create(&format!("/bench/f/after-{n}"), &VALUE, OPEN),
        )
        .await
        {
            Ok(Ok(_)) => break,
            _ if killed.elapsed() > Duration::from_secs(120) => {
                bail!("no write within 120 s of the leader's death")
            }
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    let failover = killed.elapsed().as_secs_f64() * 1000.0;
    eprintln!("failover: {failover:.0} ms");
    out.push(("failover_ms", failover));
    drop((survivor, dead_leader));
    drop(ensemble);

    // Rejoin by SNAP, on a fresh ensemble holding the Z znodes and nothing more (the
    // creates above leave more znodes behind the faster a server takes them): load the
    // znodes, wipe a follower, time its return.
    if opts.znodes > 0 {
        let mut ensemble =
            LocalEnsemble::start(kind, 3, &dir.join("rejoin"), Some(binary), "forceSync=yes")?;
        let leader = ensemble.wait_for_leader(Duration::from_secs(120))?;
        let loaders = connect_many(ensemble.addrs[leader].port(), 16).await?;
        create_all(&loaders[0], &["/bench".into(), "/bench/z".into()]).await?;
        let started = Instant::now();
        let per = opts.znodes.div_ceil(16);
        let mut tasks = Vec::new();
        for (c, client) in loaders.iter().enumerate() {
            let client = client.clone();
            let from = c as u64 * per;
            let to = ((c as u64 + 1) * per).min(opts.znodes);
            tasks.push(tokio::spawn(async move {
                let paths: Vec<String> = (from..to).map(|i| format!("/bench/z/n{i:07}")).collect();
                for chunk in paths.chunks(10_000) {
                    create_all(&client, chunk).await?;
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        eprintln!(
            "loaded {} znodes in {:.1} s",
            opts.znodes,
            started.elapsed().as_secs_f64()
        );
        drop(loaders);
        let wiped = (leader + 1) % 3;
        ensemble.kill_member(wiped);
        let data = dir.join(format!("rejoin/server{}/data/version-2", wiped + 1));
        std::fs::remove_dir_all(&data).with_context(|| format!("wiping {}", data.display()))?;
        let started = Instant::now();
        ensemble.start_member(wiped)?;
        let last = format!("/bench/z/n{:07}", opts.znodes - 1);
        loop {
            let srvr = four_letter_blocking(ensemble.addrs[wiped], "srvr");
            if srvr.contains("Mode: follower") {
                let reader = connect_many(ensemble.addrs[wiped].port(), 1).await?;
                if reader[0].check_stat(&last).await?.is_some() {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!(
                    "server.{} did not serve within 600 s of its restart",
                    wiped + 1
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rejoin = started.elapsed().as_secs_f64() * 1000.0;
        eprintln!("rejoin by SNAP with {} znodes: {rejoin:.0} ms", opts.znodes);
        out.push(("rejoin_ms", rejoin));
    }
    Ok(out)
}

fn report(opts: &Options, results: &BTreeMap<(&'static str, &'static str), f64>) -> String {
    let ours = name(Kind::Ours);
    let theirs = name(Kind::ZooKeeper);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Ensemble benchmark\n\nThree members each, on loopback, forceSync=yes, 100-byte \
         values, {} s windows after {} s of warmup, {} znodes for the rejoin; one load \
         generator (the zookeeper-client crate) on one tokio thread; `sync` and {} s of rest \
         before each ensemble. Machine: {} cores, load average {}.\n",
        opts.secs,
        opts.warmup,
        opts.znodes,
        opts.rest,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let _ = writeln!(
        out,
        "| measurement | ours | Apache ZooKeeper | ratio | target |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (key, what, higher, target) in ROWS {
        let a = results.get(&(ours, key));
        let b = results.get(&(theirs, key));
        // Values below 10 (the latencies' milliseconds) to the hundredth, as the bench
        // prints them while it runs (a p99 of 0.58 ms is not "0.6"); larger ones (rates,
        // failover and rejoin times) whole.
        let show = |v: Option<&f64>| {
            v.map_or("-".to_string(), |v| match *v {
                v if v < 10.0 => format!("{v:.2}"),
                v => format!("{v:.0}"),
            })
        };
        let what = what.replace("{znodes}", &opts.znodes.to_string());
        let (ratio, verdict) = match (a, b) {
            (Some(a), Some(b)) if *b > 0.0 => {
                let ratio = a / b;
                let met = if target == 0.0 {
                    ""
                } else if (higher && ratio >= target) || (!higher && ratio <= target) {
                    " met"
                } else {
                    " not met"
                };
                (format!("{ratio:.2}×"), met)
            }
            _ => ("-".into(), ""),
        };
        let target = if target == 0.0 {
            "-".to_string()
        } else if higher {
            format!("≥ {target}×{verdict}")
        } else {
            format!("≤ {target}×{verdict}")
        };
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {ratio} | {target} |",
            show(a),
            show(b)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report names the znodes the rejoin was measured with, and shows milliseconds to
    /// the hundredth and rates whole, with each ratio's verdict.
    #[test]
    fn the_report_shows_figures_as_measured() {
        let opts = Options::parse(&["--znodes".to_string(), "2500".to_string()]).unwrap();
        let (ours, theirs) = (name(Kind::Ours), name(Kind::ZooKeeper));
        let results = BTreeMap::from([
            ((ours, "create_p99"), 0.58),
            ((theirs, "create_p99"), 0.79),
            ((ours, "create_leader"), 83_966.6),
            ((theirs, "create_leader"), 23_349.8),
            ((ours, "rejoin_ms"), 739.0),
            ((theirs, "rejoin_ms"), 2_792.8),
        ]);
        let report = report(&opts, &results);
        assert!(
            report.contains(
                "| create p99 1×1 via follower, ms | 0.58 | 0.79 | 0.73× | ≤ 0.5× not met |"
            ),
            "{report}"
        );
        assert!(
            report
                .contains("| create 16×16 via leader, ops/s | 83967 | 23350 | 3.60× | ≥ 3× met |"),
            "{report}"
        );
        assert!(
            report.contains(
                "| rejoin by SNAP with 2500 znodes, ms | 739 | 2793 | 0.26× | ≤ 0.5× met |"
            ),
            "{report}"
        );
        assert!(
            report.contains("| getData 16×16 via follower, ops/s | - | - | - |"),
            "{report}"
        );
    }
}
