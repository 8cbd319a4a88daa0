//! `cargo xtask bench election`: how long an ensemble is without a leader after its
//! leader dies, for our election (zk-election's gRPC nodes, in this process, on
//! loopback) and for Apache ZooKeeper 3.8.0 (Debian's package, one JVM per member, on
//! loopback), measured the same way: stop the leader, then poll the others until one of
//! them leads with a quorum behind it. The stopped member is restarted and rejoins before
//! the next run.
//!
//! For ZooKeeper, "leads" is what `srvr` says (`Mode: leader`), which it only says once
//! Zab has a quorum of followers synced; the leader is killed with SIGKILL. For ours, it
//! is a member in state LEADING with a quorum of the ensemble following it; the leader is
//! stopped with `Node::shutdown`, which closes its streams as a killed process's sockets
//! are closed. As `srvr` also counts Zab's sync, the new leader's own account of the
//! election is reported too: the `LEADER ELECTION TOOK - N MS` line ZooKeeper logs (from
//! going LOOKING to deciding), which is what ours measures but for noticing the loss.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use zk_election::transport::{Node, NodeConfig};
use zk_election::{Config, Lease, PeerData, ServerState, Sid};

use crate::servers::{ZOOKEEPER_JAR, free_port, signal_group, wait_for_exit};

/// How long one run may take before the benchmark gives up.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

struct Options {
    sizes: Vec<usize>,
    runs: usize,
    zk_runs: usize,
    only: Option<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut opts = Options {
            sizes: vec![3, 5, 7],
            runs: 50,
            zk_runs: 20,
            only: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--sizes" => {
                    opts.sizes = value()?
                        .split(',')
                        .map(str::parse)
                        .collect::<Result<_, _>>()
                        .context("--sizes 3,5,7")?;
                }
                "--runs" => opts.runs = value()?.parse().context("--runs N")?,
                "--zk-runs" => opts.zk_runs = value()?.parse().context("--zk-runs N")?,
                "--only" => opts.only = Some(value()?.clone()),
                other => bail!("unknown option {other}"),
            }
        }
        if opts.sizes.iter().any(|n| *n < 3) {
            bail!("ensembles of at least 3 members");
        }
        Ok(opts)
    }

    fn wants(&self, which: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == which)
    }
}

/// Median and 99th percentile (nearest rank) of `samples`.
fn summary(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let rank = |p: f64| {
        let index = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index]
    };
    (rank(0.5), rank(0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let mut rows = Vec::new();
    for &n in &opts.sizes {
        let ours = if opts.wants("ours") {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let mut samples = runtime.block_on(ours(n, opts.runs))?;
            Some((samples.len(), summary(&mut samples)))
        } else {
            None
        };
        let (zookeeper, logged) = if opts.wants("zookeeper") {
            let (mut samples, mut logged) = zookeeper(n, opts.zk_runs)?;
            (
                Some((samples.len(), summary(&mut samples))),
                (!logged.is_empty()).then(|| (logged.len(), summary(&mut logged))),
            )
        } else {
            (None, None)
        };
        rows.push((n, ours, zookeeper, logged));
    }
    println!("\ntime from leader loss to a new leader, loopback (median / p99)");
    println!(
        "{:<8} {:>26} {:>32} {:>36}",
        "members", "zk-election", "ZooKeeper 3.8.0 (srvr)", "ZooKeeper 3.8.0 (its log)"
    );
    for (n, ours, zookeeper, logged) in rows {
        let cell = |r: Option<(usize, (Duration, Duration))>| match r {
            Some((runs, (median, p99))) => format!("{} / {} ({runs} runs)", ms(median), ms(p99)),
            None => "-".to_string(),
        };
        println!(
            "{n:<8} {:>26} {:>32} {:>36}",
            cell(ours),
            cell(zookeeper),
            cell(logged)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- ours

fn election_config(n: usize) -> Result<Config> {
    let mut entries = Vec::new();
    for sid in 1..=n {
        entries.push((
            format!("server.{sid}"),
            format!("127.0.0.1:0:{}", free_port()?),
        ));
    }
    let config = Config::from_entries(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    Ok(config.with_lease(Lease {
        heartbeat_ms: 100,
        timeout_ms: 2_000,
    }))
}

/// The member that leads with a quorum of `nodes` following it, if any.
fn our_leader(config: &Config, nodes: &BTreeMap<Sid, Node>) -> Option<Sid> {
    let leader = nodes
        .values()
        .find(|node| node.status().state == ServerState::Leading)?;
    let vote = leader.status().vote;
    let backers: Vec<Sid> = nodes
        .values()
        .filter(|node| {
            let s = node.status();
            s.state != ServerState::Looking
                && s.vote.leader == vote.leader
                && s.vote.peer_epoch == vote.peer_epoch
        })
        .map(Node::sid)
        .collect();
    config
        .verifier
        .contains_quorum(&backers)
        .then_some(vote.leader)
}

async fn wait_ours(config: &Config, nodes: &BTreeMap<Sid, Node>, all: bool) -> Result<Sid> {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if let Some(leader) = our_leader(config, nodes) {
            // Every member settled, and each follower with a stream to the leader (as
            // ZooKeeper's followers have once they serve).
            let settled = nodes.values().all(|node| {
                node.status().state != ServerState::Looking
                    && (node.sid() == leader || node.peer_connected(leader))
            });
            if !all || settled {
                return Ok(leader);
            }
        }
        if Instant::now() >= deadline {
            bail!("no leader within {RUN_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn ours(n: usize, runs: usize) -> Result<Vec<Duration>> {
    let config = election_config(n)?;
    let start = |sid: Sid| Node::start(NodeConfig::new(sid, config.clone(), PeerData::default()));
    let mut nodes = BTreeMap::new();
    for sid in 1..=n as Sid {
        nodes.insert(sid, start(sid).await?);
    }
    wait_ours(&config, &nodes, true).await?;
    let mut samples = Vec::new();
    for run in 0..runs {
        let leader = wait_ours(&config, &nodes, true).await?;
        let node = nodes.remove(&leader).context("leader")?;
        let stopped = Instant::now();
        let shutdown = tokio::spawn(node.shutdown());
        let next = wait_ours(&config, &nodes, false).await?;
        let took = stopped.elapsed();
        shutdown.await?;
        eprintln!(
            "zk-election, {n} members, run {}: leader {leader} stopped, {next} leads after {}",
            run + 1,
            ms(took)
        );
        samples.push(took);
        nodes.insert(leader, start(leader).await?);
    }
    for node in nodes.into_values() {
        node.shutdown().await;
    }
    Ok(samples)
}

// ---------------------------------------------------------------- ZooKeeper

struct ZkMember {
    sid: usize,
    client: SocketAddr,
    cfg: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl ZkMember {
    fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut classpath = vec![ZOOKEEPER_JAR.to_string()];
        let simple = Path::new(crate::JAVA_DIR).join("slf4j-simple.jar");
        if simple.is_file() {
            classpath.push(simple.display().to_string());
        }
        let mut cmd = crate::java(&classpath);
        cmd.arg("-Xmx256m")
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(&self.cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        self.child = Some(cmd.spawn().context("starting ZooKeeper")?);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(child.id(), "-KILL");
            let _ = wait_for_exit(&mut child, Duration::from_secs(10));
        }
    }
}

impl Drop for ZkMember {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `Mode:` line of `srvr` (`leader`, `follower`), or `None` while not serving.
fn zk_mode(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"srvr").ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .lines()
        .find_map(|line| line.strip_prefix("Mode: "))
        .map(str::to_string)
}

fn zk_ensemble(n: usize, dir: &Path) -> Result<Vec<ZkMember>> {
    let mut servers = String::new();
    for sid in 1..=n {
        servers.push_str(&format!(
            "server.{sid}=127.0.0.1:{}:{}\n",
            free_port()?,
            free_port()?
        ));
    }
    let mut members = Vec::new();
    for sid in 1..=n {
        let home = dir.join(format!("zk{sid}"));
        let data = home.join("data");
        std::fs::create_dir_all(&data)?;
        std::fs::write(data.join("myid"), format!("{sid}\n"))?;
        let port = free_port()?;
        let cfg = home.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n\
                 admin.enableServer=false\n{servers}",
                data.display()
            ),
        )?;
        members.push(ZkMember {
            sid,
            client: SocketAddr::from(([127, 0, 0, 1], port)),
            cfg,
            log: home.join("server.log"),
            child: None,
        });
    }
    Ok(members)
}

/// Polls until a member leads and (with `all`) every running member serves.
fn wait_zk(members: &[ZkMember], all: bool) -> Result<usize> {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        let modes: Vec<(usize, Option<String>)> = members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| (m.sid, zk_mode(m.client)))
            .collect();
        let leader = modes
            .iter()
            .find(|(_, mode)| mode.as_deref() == Some("leader"));
        if let Some((sid, _)) = leader {
            if !all || modes.iter().all(|(_, mode)| mode.is_some()) {
                return Ok(*sid);
            }
        }
        if Instant::now() >= deadline {
            bail!("no ZooKeeper leader within {RUN_TIMEOUT:?}: {modes:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The last election time a member logged (`LEADER ELECTION TOOK - 205 MS`), if any.
fn logged_election(log: &Path) -> Option<Duration> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("LEADER ELECTION TOOK - "))?;
    let after = line.split("LEADER ELECTION TOOK - ").nth(1)?;
    let ms: u64 = after.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// `runs` leader losses: the times until `srvr` shows a new leader, and the election times
/// the new leaders logged.
fn zookeeper(n: usize, runs: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    if !Path::new(ZOOKEEPER_JAR).is_file() {
        bail!("{ZOOKEEPER_JAR} is missing: apt-get install zookeeper");
    }
    let dir = std::env::temp_dir().join(format!("xtask-election-{}-{n}", std::process::id()));
    let mut members = zk_ensemble(n, &dir)?;
    for member in &mut members {
        member.start()?;
    }
    wait_zk(&members, true).context("starting the ensemble")?;
    let mut samples = Vec::new();
    let mut logged = Vec::new();
    for run in 0..runs {
        let leader = wait_zk(&members, true)?;
        let stopped = Instant::now();
        members[leader - 1].kill();
        let next = wait_zk(&members, false)?;
        let took = stopped.elapsed();
        eprintln!(
            "ZooKeeper 3.8.0, {n} members, run {}: leader {leader} killed, {next} leads after {}",
            run + 1,
            ms(took)
        );
        samples.push(took);
        if let Some(election) = logged_election(&members[next - 1].log) {
            logged.push(election);
        }
        members[leader - 1].start()?;
    }
    drop(members);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((samples, logged))
}
