//! `cargo xtask bench replication`: how fast zk-replication commits, against the
//! standalone group commit on the same disk.
//!
//! - **3 members**: zk-replication's runtime (`runtime::Member`: the Zab core,
//!   zk-election's gRPC node, the `Quorum` streams) for three members in this process,
//!   on loopback, each with `FileStorage` (ZooKeeper's txn log, fsync on) in its own
//!   scratch directory. The leader proposes; a proposal counts once the leader applies
//!   it, which is after a quorum (the leader and one follower) logged and fsynced it.
//! - **1 member**: the same runtime with a quorum of one (commit = local fsync).
//! - **group commit**: zk-persistence's `GroupCommit` alone (what the standalone server
//!   writes through): append, wait for durable.
//!
//! Each runs a closed loop of `--outstanding` proposals in flight for `--secs`, with
//! 100-byte txns (a log record: `TxnHeader` and a body). Reported: commits per second
//! and the latency from proposing to committed (p50, p99).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc;
use zk_jute::txn::TxnHeader;
use zk_jute::{Record, Zxid};
use zk_persistence::{FileTxnLog, GroupCommit, GroupOptions, LogEntry, LogOptions};
use zk_replication::runtime::{Member, MemberConfig, StateMachine};
use zk_replication::storage::FileStorage;
use zk_replication::{Config, Entry, Sid, State};

struct Options {
    secs: u64,
    outstanding: Vec<usize>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut opts = Options {
            secs: 5,
            outstanding: vec![1, 64],
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--secs" => opts.secs = value()?.parse().context("--secs S")?,
                "--outstanding" => {
                    opts.outstanding = value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .context("--outstanding 1,64")?;
                }
                other => return Err(anyhow!("unknown option {other}")),
            }
        }
        Ok(opts)
    }
}

/// Commits per second, p50 and p99 latency.
struct Figures {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn figures(mut latencies: Vec<Duration>, elapsed: Duration) -> Figures {
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(i).copied().unwrap_or_default()
    };
    Figures {
        per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// A 100-byte log record at `zxid`.
fn record(zxid: Zxid) -> (TxnHeader, Bytes) {
    let header = TxnHeader {
        client_id: 0x100,
        cxid: 1,
        zxid: zxid.0,
        time: 1_700_000_000_000,
        r#type: 5,
    };
    let body = Bytes::from(vec![b'x'; 100 - header.encoded_len()]);
    (header, body)
}

fn record_bytes(zxid: Zxid) -> Bytes {
    let (header, body) = record(zxid);
    let mut data = BytesMut::new();
    header.encode(&mut data);
    data.put_slice(&body);
    data.freeze()
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let scratch = std::env::temp_dir().join(format!("xtask-bench-zab-{}", std::process::id()));
    super::remove_path(&scratch)?;
    std::fs::create_dir_all(&scratch)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for &k in &opts.outstanding {
        let secs = Duration::from_secs(opts.secs);
        eprintln!("3 members, {k} outstanding ...");
        let three = runtime.block_on(ensemble(&scratch.join(format!("three-{k}")), 3, k, secs))?;
        eprintln!("1 member, {k} outstanding ...");
        let one = runtime.block_on(ensemble(&scratch.join(format!("one-{k}")), 1, k, secs))?;
        eprintln!("group commit, {k} outstanding ...");
        let group = runtime.block_on(group_commit(&scratch.join(format!("group-{k}")), k, secs))?;
        rows.push((k, three, one, group));
    }
    super::remove_path(&scratch)?;
    println!(
        "\ncommits of 100-byte txns, fsync on, loopback, {} s each",
        opts.secs
    );
    println!(
        "{:<12} {:>34} {:>34} {:>34}",
        "outstanding", "3 members (gRPC)", "1 member", "GroupCommit alone"
    );
    let cell = |f: &Figures| {
        format!(
            "{:>8.0}/s p50 {:>5} µs p99 {:>5} µs",
            f.per_sec,
            f.p50.as_micros(),
            f.p99.as_micros()
        )
    };
    for (k, three, one, group) in &rows {
        println!(
            "{k:<12} {:>34} {:>34} {:>34}",
            cell(three),
            cell(one),
            cell(group)
        );
    }
    Ok(())
}

/// Reports each zxid the leader applies, and when.
struct Notify(mpsc::UnboundedSender<(Zxid, Instant)>);

impl StateMachine for Notify {
    fn apply(&mut self, entry: &Entry) {
        let _ = self.0.send((entry.zxid, Instant::now()));
    }
    fn snapshot(&self) -> Vec<Bytes> {
        Vec::new()
    }
    fn restore(&mut self, _zxid: Zxid, _pieces: Vec<Bytes>) {}
    fn truncate(&mut self, _zxid: Zxid) {}
}

fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

async fn ensemble(dir: &Path, n: u64, outstanding: usize, secs: Duration) -> Result<Figures> {
    let ports = free_ports(2 * n as usize)?;
    let port = |sid: Sid, i: usize| ports[2 * (sid as usize - 1) + i];
    let entries: Vec<(String, String)> = (1..=n)
        .map(|sid| {
            (
                format!("server.{sid}"),
                format!("127.0.0.1:{}:{}", port(sid, 0), port(sid, 1)),
            )
        })
        .collect();
    let election =
        zk_election::Config::from_entries(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let mut zab = Config::from_election(&election);
    zab.tick_ms = 200;
    let quorum_addrs: BTreeMap<Sid, SocketAddr> = (1..=n)
        .map(|sid| (sid, SocketAddr::from(([127, 0, 0, 1], port(sid, 0)))))
        .collect();
    let mut members = BTreeMap::new();
    let mut applied = BTreeMap::new();
    for sid in 1..=n {
        let data_dir: PathBuf = dir.join(sid.to_string());
        let storage = FileStorage::open(&data_dir, Zxid(0), LogOptions::default())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let config = MemberConfig {
            sid,
            election: election.clone(),
            zab: zab.clone(),
            quorum_addrs: quorum_addrs.clone(),
            tick_ms: 20,
        };
        members.insert(sid, Member::start(config, storage, Notify(tx)).await?);
        applied.insert(sid, rx);
    }
    // Wait for an established leader with every member serving.
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let leader = members.values().find(|m| {
            matches!(
                m.status().state,
                Some(State::Leading {
                    established: true,
                    ..
                })
            )
        });
        let all = members.values().all(|m| {
            matches!(
                m.status().state,
                Some(
                    State::Leading {
                        established: true,
                        ..
                    } | State::Learning { serving: true, .. }
                )
            )
        });
        if let (Some(leader), true) = (leader, all) {
            break leader.sid();
        }
        if Instant::now() > deadline {
            return Err(anyhow!("no leader within 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let proposer = members[&leader].proposer();
    let mut commits = applied.remove(&leader).context("the leader's commits")?;
    // Proposals run as tasks, so that those issued while the leader syncs its log are
    // logged together; each reports its zxid and when it was proposed.
    let (proposed_tx, mut proposed) = mpsc::unbounded_channel::<(Option<Zxid>, Instant)>();
    let mut started: BTreeMap<Zxid, Instant> = BTreeMap::new();
    let mut done: BTreeMap<Zxid, Instant> = BTreeMap::new();
    let mut latencies = Vec::new();
    let begin = Instant::now();
    let end = begin + secs;
    let mut in_flight = 0;
    loop {
        while in_flight < outstanding && Instant::now() < end {
            let (proposer, tx) = (proposer.clone(), proposed_tx.clone());
            tokio::spawn(async move {
                let at = Instant::now();
                let zxid = proposer.propose_with(record_bytes).await;
                let _ = tx.send((zxid, at));
            });
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        tokio::select! {
            p = proposed.recv() => {
                let (zxid, at) = p.context("proposals stopped")?;
                let zxid = zxid.context("the leader stopped leading")?;
                started.insert(zxid, at);
            }
            c = commits.recv() => {
                let (zxid, at) = c.context("the leader stopped")?;
                done.insert(zxid, at);
            }
        }
        // Match proposals and commits, whichever came first.
        let matched: Vec<Zxid> = done
            .keys()
            .filter(|z| started.contains_key(z))
            .copied()
            .collect();
        for zxid in matched {
            if let (Some(from), Some(to)) = (started.remove(&zxid), done.remove(&zxid)) {
                latencies.push(to.saturating_duration_since(from));
                in_flight -= 1;
            }
        }
    }
    let elapsed = begin.elapsed();
    for (_, m) in members {
        m.stop().await;
    }
    Ok(figures(latencies, elapsed))
}

async fn group_commit(dir: &Path, outstanding: usize, secs: Duration) -> Result<Figures> {
    std::fs::create_dir_all(dir)?;
    let log = FileTxnLog::open(dir, LogOptions::default())?;
    let group = Arc::new(GroupCommit::start(log, GroupOptions::default()));
    let mut waiting = tokio::task::JoinSet::new();
    let mut latencies = Vec::new();
    let begin = Instant::now();
    let end = begin + secs;
    let mut counter = 0u32;
    loop {
        while waiting.len() < outstanding && Instant::now() < end {
            counter += 1;
            let (header, body) = record(Zxid::new(1, counter));
            let at = Instant::now();
            let done = group.append(LogEntry { header, body });
            waiting.spawn(async move { done.await.map(|()| at.elapsed()) });
        }
        let Some(next) = waiting.join_next().await else {
            break;
        };
        latencies.push(next?.map_err(|e| anyhow!("{e}"))?);
    }
    let elapsed = begin.elapsed();
    if let Ok(group) = Arc::try_unwrap(group) {
        group.shutdown();
    }
    Ok(figures(latencies, elapsed))
}
