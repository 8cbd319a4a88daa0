//! `cargo xtask ensemble [N]`: N members on loopback, each a process with its own
//! `zoo.cfg`, `myid` and data directory, ours (release build) or Apache ZooKeeper 3.8.0's.
//! Prints the connect string once a leader serves, and stops them all on Ctrl-C.
//!
//! The same [`LocalEnsemble`] starts ensembles for the tools that compare ours with
//! Apache ZooKeeper's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::servers::{ServerProc, free_port, server_classpath};

const USAGE: &str = "cargo xtask ensemble [N] [--zookeeper] [--dir DIR] [--zk-server PATH]";

/// Which server the members run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ours,
    ZooKeeper,
}

/// Members on loopback, stopped on drop.
pub(crate) struct LocalEnsemble {
    pub(crate) kind: Kind,
    pub(crate) members: Vec<Option<ServerProc>>,
    pub(crate) addrs: Vec<SocketAddr>,
    /// Each member's `admin.serverPort` (the AdminServer runs when `extra` sets
    /// `admin.enableServer=true`).
    pub(crate) admin_ports: Vec<u16>,
    /// Each member's quorum and election ports.
    pub(crate) peer_ports: Vec<(u16, u16)>,
    configs: Vec<PathBuf>,
    dir: PathBuf,
    binary: Option<PathBuf>,
}

impl LocalEnsemble {
    /// Writes the configuration of `n` members under `dir` and starts them; returns once
    /// every member answers `ruok`. `extra` goes into every `zoo.cfg`.
    pub(crate) fn start(
        kind: Kind,
        n: usize,
        dir: &Path,
        binary: Option<&Path>,
        extra: &str,
    ) -> Result<Self> {
        Self::start_viewed(kind, n, dir, binary, extra, |_, _, ports| Ok(ports))
    }

    /// [`start`](Self::start) where member `i` reaches member `j` at the quorum and
    /// election ports `view(i, j, real ports)` returns (a proxy's, to cut links), its own
    /// line keeping its real ports.
    pub(crate) fn start_viewed(
        kind: Kind,
        n: usize,
        dir: &Path,
        binary: Option<&Path>,
        extra: &str,
        mut view: impl FnMut(usize, usize, (u16, u16)) -> Result<(u16, u16)>,
    ) -> Result<Self> {
        let mut peer_ports = Vec::new();
        let mut addrs = Vec::new();
        let mut admin_ports = Vec::new();
        for _ in 1..=n {
            peer_ports.push((free_port()?, free_port()?));
            addrs.push(SocketAddr::from(([127, 0, 0, 1], free_port()?)));
            admin_ports.push(free_port()?);
        }
        let mut configs = Vec::new();
        for sid in 1..=n {
            let mut servers = String::new();
            for (j, &real) in peer_ports.iter().enumerate() {
                let (quorum, election) = if j == sid - 1 {
                    real
                } else {
                    view(sid - 1, j, real)?
                };
                servers.push_str(&format!("server.{}=127.0.0.1:{quorum}:{election}\n", j + 1));
            }
            let home = dir.join(format!("server{sid}"));
            let data = home.join("data");
            std::fs::create_dir_all(&data)
                .with_context(|| format!("creating {}", data.display()))?;
            std::fs::write(data.join("myid"), format!("{sid}\n"))?;
            let cfg = home.join("zoo.cfg");
            let text = format!(
                "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n\
                 admin.enableServer=false\nadmin.serverPort={}\n{extra}\n{servers}",
                data.display(),
                addrs[sid - 1].port(),
                admin_ports[sid - 1]
            );
            std::fs::write(&cfg, text).with_context(|| format!("writing {}", cfg.display()))?;
            configs.push(cfg);
        }
        let mut ensemble = LocalEnsemble {
            kind,
            members: (0..n).map(|_| None).collect(),
            addrs,
            admin_ports,
            peer_ports,
            configs,
            dir: dir.to_owned(),
            binary: binary.map(Path::to_owned),
        };
        // Highest id first, each listening on its election port before the next starts:
        // the first two elect the highest, as a quorum of equal histories does, so that
        // both servers' ensembles (compared member by member) have the same leader
        // whatever the machine's load.
        for i in (0..n).rev() {
            ensemble.start_member(i)?;
            let election = SocketAddr::from(([127, 0, 0, 1], ensemble.peer_ports[i].1));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while std::net::TcpStream::connect(election).is_err() {
                if std::time::Instant::now() > deadline {
                    anyhow::bail!("member {} never listened on {election}", i + 1);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        Ok(ensemble)
    }

    /// Starts member `i` (0-based) again.
    pub(crate) fn start_member(&mut self, i: usize) -> Result<()> {
        let cfg = &self.configs[i];
        let log = self.dir.join(format!("server{}/server.log", i + 1));
        let cmd = match self.kind {
            Kind::Ours => {
                let binary = self.binary.as_ref().context("no zk-server binary")?;
                let mut cmd = Command::new(binary);
                cmd.arg(cfg)
                    .env("NO_COLOR", "1")
                    .env("ZK_FAILPOINTS_FILE", self.failpoint_file(i));
                cmd
            }
            Kind::ZooKeeper => {
                let mut cmd = crate::java(&server_classpath());
                cmd.arg("-Xmx2g")
                    .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
                    .arg(cfg);
                cmd
            }
        };
        let name = match self.kind {
            Kind::Ours => "zk-server",
            Kind::ZooKeeper => "Apache ZooKeeper",
        };
        self.members[i] = Some(ServerProc::spawn(name, cmd, self.addrs[i], log)?);
        Ok(())
    }

    /// The file member `i` reads injected disk faults from, when built with zk-server's
    /// `failpoints` feature (see zk-persistence's `failpoint`).
    pub(crate) fn failpoint_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("server{}/failpoints", i + 1))
    }

    /// Stops member `i` with SIGKILL, as a crash would, and waits for it to exit.
    pub(crate) fn kill_member(&mut self, i: usize) {
        if let Some(member) = self.signal_kill(i) {
            let _ = crate::servers::wait_for_exit(
                &mut member.child.borrow_mut(),
                Duration::from_secs(10),
            );
        }
    }

    /// Sends member `i` SIGKILL and returns its process without waiting for the exit
    /// (dropping it reaps it), for a measurement that starts at the signal.
    #[must_use = "dropping the process at once waits for its exit"]
    pub(crate) fn signal_kill(&mut self, i: usize) -> Option<ServerProc> {
        let member = self.members[i].take()?;
        crate::servers::signal_group(member.child.borrow().id(), "-KILL");
        Some(member)
    }

    /// Each running member's `srvr` mode (`None` for one stopped or not answering).
    pub(crate) fn modes(&self) -> Vec<Option<String>> {
        (0..self.members.len())
            .map(|i| {
                self.members[i].as_ref()?;
                let srvr = four_letter_blocking(self.addrs[i], "srvr");
                srvr.lines()
                    .find_map(|l| l.strip_prefix("Mode: "))
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Waits until every running member serves with one leader; returns the leader.
    pub(crate) fn wait_for_leader(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let modes = self.modes();
            let running = self.members.iter().flatten().count();
            let serving = modes
                .iter()
                .flatten()
                .filter(|m| ["leader", "follower", "observer"].contains(&m.as_str()))
                .count();
            let leaders: Vec<usize> = (0..modes.len())
                .filter(|i| modes[*i].as_deref() == Some("leader"))
                .collect();
            if leaders.len() == 1 && serving == running {
                return Ok(leaders[0]);
            }
            if Instant::now() >= deadline {
                bail!("no leader with every member serving after {timeout:?}: {modes:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Member `i`, which must be running.
    pub(crate) fn follower(&self, i: usize) -> &ServerProc {
        self.members[i]
            .as_ref()
            .unwrap_or_else(|| unreachable!("member {i} was started"))
    }

    /// `host:port,...` of every member.
    pub(crate) fn connect_string(&self) -> String {
        self.addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The two servers the comparison tools (`compat-clients`, `diff`) run, stopped on
/// drop: standalone, or three-member ensembles whose followers the clients talk to.
pub(crate) enum Compared {
    /// Apache ZooKeeper's, then ours.
    Standalone(ServerProc, ServerProc),
    /// Each ensemble with the index of the follower used.
    Ensembles((LocalEnsemble, usize), (LocalEnsemble, usize)),
}

impl Compared {
    /// Starts both under `dir`: as ensembles when `ensemble`.
    pub(crate) fn start(ensemble: bool, dir: &Path, binary: &Path) -> Result<Compared> {
        if !ensemble {
            return Ok(Compared::Standalone(
                ServerProc::start_zookeeper(dir)?,
                ServerProc::start_ours(binary, dir)?,
            ));
        }
        let three = |kind, name: &str| -> Result<(LocalEnsemble, usize)> {
            let dir = dir.join(name);
            std::fs::create_dir_all(&dir)?;
            let ensemble =
                LocalEnsemble::start(kind, 3, &dir, Some(binary), "extendedTypesEnabled=true")?;
            let leader = ensemble.wait_for_leader(Duration::from_secs(120))?;
            Ok((ensemble, (leader + 1) % 3))
        };
        Ok(Compared::Ensembles(
            three(Kind::ZooKeeper, "zk-ensemble")?,
            three(Kind::Ours, "our-ensemble")?,
        ))
    }

    /// The servers the clients talk to: Apache ZooKeeper's, then ours.
    pub(crate) fn servers(&self) -> (&ServerProc, &ServerProc) {
        match self {
            Compared::Standalone(zk, ours) => (zk, ours),
            Compared::Ensembles(zk, ours) => (zk.0.follower(zk.1), ours.0.follower(ours.1)),
        }
    }
}

/// A four-letter word's answer, or an empty string.
pub(crate) fn four_letter_blocking(addr: SocketAddr, word: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
    else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.write_all(word.as_bytes());
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

/// `cargo xtask ensemble`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut n = 3usize;
    let mut kind = Kind::Ours;
    let mut dir = None;
    let mut binary = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--zookeeper" => kind = Kind::ZooKeeper,
            "--dir" => dir = Some(PathBuf::from(args.next().context(USAGE)?)),
            "--zk-server" => binary = Some(PathBuf::from(args.next().context(USAGE)?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            number if number.parse::<usize>().is_ok() => n = number.parse()?,
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if n == 0 {
        bail!("an ensemble needs at least one member\n{USAGE}");
    }
    let target = crate::bench::target_dir()?;
    let dir = dir.unwrap_or_else(|| target.join("ensemble"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let binary = match (kind, binary) {
        (Kind::Ours, None) => {
            crate::run(crate::cargo().args(["build", "--release", "-p", "zk-server"]))?;
            Some(target.join("release/zk-server"))
        }
        (_, binary) => binary,
    };
    eprintln!("starting {n} members under {}", dir.display());
    let ensemble = LocalEnsemble::start(kind, n, &dir, binary.as_deref(), "")?;
    let leader = ensemble.wait_for_leader(Duration::from_secs(60))?;
    for (i, addr) in ensemble.addrs.iter().enumerate() {
        let role = if i == leader { "leader" } else { "follower" };
        eprintln!(
            "server.{} {addr} {role}, log {}",
            i + 1,
            dir.join(format!("server{}/server.log", i + 1)).display()
        );
    }
    println!("{}", ensemble.connect_string());
    eprintln!("serving; Ctrl-C stops every member");
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc_flag(move || stop.store(true, Ordering::SeqCst))?;
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        for (i, member) in ensemble.members.iter().enumerate() {
            if let Some(status) = member.as_ref().and_then(ServerProc::exited) {
                bail!("server.{} exited with {status}", i + 1);
            }
        }
    }
    eprintln!("stopping");
    drop(ensemble);
    Ok(())
}

/// Runs `on_signal` on SIGINT or SIGTERM, from a thread of a small tokio runtime.
fn ctrlc_flag(on_signal: impl FnOnce() + Send + 'static) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        on_signal();
    });
    Ok(())
}
