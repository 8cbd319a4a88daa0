//! `cargo xtask bench`: our server against Apache ZooKeeper 3.8.0.
//!
//! Both servers run as separate processes on loopback with the same generated `zoo.cfg`
//! settings (each its own fresh `dataDir` and `clientPort`). One load generator, built on
//! the third-party `zookeeper-client` crate, drives both the same way. The request
//! measurements alternate between the two servers (both running, one measured at a
//! time), so a change in background load on the machine hits both alike:
//!
//! - create, setData, getData, exists and a 90%-read mix with 100-byte values: latency
//!   (p50, p99) with one client and one request outstanding, throughput with N clients
//!   each keeping M requests outstanding;
//! - the time from a setData to the last of W watchers (one session each, getData with a
//!   watch on the same znode) hearing of it;
//! - RSS (`VmRSS` of the server process) before and after loading Z znodes, and the cold
//!   restart time with them: SIGTERM, wait, start on the same data directory, until a
//!   getData of one of them answers.
//!
//! A debug build of this program re-runs itself from a release build: a load generator
//! compiled without optimisations would measure itself rather than the servers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use crate::servers::four_letter;

/// Set when a debug build hands over to the release build, so it does not loop.
const REEXEC_ENV: &str = "XTASK_BENCH_RELEASE";
/// Apache ZooKeeper's standalone entry point.
const ZK_MAIN: &str = "org.apache.zookeeper.server.ZooKeeperServerMain";
/// Its jar names the rest of the classpath in its manifest (Debian's package).
const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
/// SLF4J binding for the server log (INFO, to the log file); optional.
const ZK_LOG_JAR: &str = "/usr/share/java/slf4j-simple.jar";

/// Every value written: 100 bytes.
pub(crate) const VALUE: [u8; 100] = [b'v'; 100];
/// Znodes read and written by setData, getData, exists and the mix.
const KEYS: usize = 1000;
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
const RESTART_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the load generator's workers may take to finish after a measurement.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Loading fails when no create completes for this long.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
const WATCH_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) static OPEN: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

/// Which server.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Ours,
    ZooKeeper,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::ZooKeeper => "zookeeper",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Ours => "zk-rs",
            Kind::ZooKeeper => "Apache ZooKeeper 3.8.0",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Command-line options (see `cargo xtask help`).
#[derive(Clone, Debug)]
struct Options {
    secs: f64,
    warmup: f64,
    clients: Vec<usize>,
    outstanding: usize,
    znodes: u64,
    load_sessions: usize,
    load_outstanding: usize,
    watchers: usize,
    watch_rounds: usize,
    threads: usize,
    only: Option<Kind>,
    ops: Vec<Op>,
    report: Option<PathBuf>,
    keep: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            secs: 5.0,
            warmup: 1.0,
            clients: vec![16, 64],
            outstanding: 16,
            znodes: 1_000_000,
            load_sessions: 8,
            load_outstanding: 128,
            watchers: 1000,
            watch_rounds: 3,
            threads: 2,
            only: None,
            ops: Op::ALL.to_vec(),
            report: None,
            keep: false,
        }
    }
}

fn value<'a>(args: &mut std::slice::Iter<'a, String>, flag: &str) -> Result<&'a str> {
    args.next()
        .map(String::as_str)
        .with_context(|| format!("{flag} needs a value"))
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T> {
    text.replace('_', "")
        .parse()
        .map_err(|_| anyhow!("{flag}: `{text}` is not a valid number"))
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let flag = flag.as_str();
            match flag {
                "--secs" => o.secs = number(flag, value(&mut it, flag)?)?,
                "--warmup" => o.warmup = number(flag, value(&mut it, flag)?)?,
                "--clients" => {
                    o.clients = value(&mut it, flag)?
                        .split(',')
                        .map(|n| number(flag, n.trim()))
                        .collect::<Result<_>>()?
                }
                "--outstanding" => o.outstanding = number(flag, value(&mut it, flag)?)?,
                "--znodes" => o.znodes = number(flag, value(&mut it, flag)?)?,
                "--load-sessions" => o.load_sessions = number(flag, value(&mut it, flag)?)?,
                "--load-outstanding" => o.load_outstanding = number(flag, value(&mut it, flag)?)?,
                "--watchers" => o.watchers = number(flag, value(&mut it, flag)?)?,
                "--watch-rounds" => o.watch_rounds = number(flag, value(&mut it, flag)?)?,
                "--client-threads" => o.threads = number(flag, value(&mut it, flag)?)?,
                "--only" => {
                    o.only = Some(match value(&mut it, flag)? {
                        "ours" => Kind::Ours,
                        "zookeeper" => Kind::ZooKeeper,
                        other => bail!("--only: `{other}` is neither `ours` nor `zookeeper`"),
                    })
                }
                "--ops" => {
                    o.ops = value(&mut it, flag)?
                        .split(',')
                        .map(|name| {
                            Op::ALL
                                .into_iter()
                                .find(|op| op.key() == name)
                                .with_context(|| {
                                    format!("--ops: `{name}` is not one of create, grow, setdata, getdata, exists, mix")
                                })
                        })
                        .collect::<Result<_>>()?;
                }
                "--report" => o.report = Some(PathBuf::from(value(&mut it, flag)?)),
                "--keep" => o.keep = true,
                other => bail!("unknown bench option `{other}` (see `cargo xtask help`)"),
            }
        }
        if !(o.secs > 0.0 && o.warmup >= 0.0) {
            bail!("--secs must be positive and --warmup not negative");
        }
        if o.clients.contains(&0) || o.outstanding == 0 || o.threads == 0 {
            bail!("--clients, --outstanding and --client-threads must be positive");
        }
        if o.load_sessions == 0 || o.load_outstanding == 0 {
            bail!("--load-sessions and --load-outstanding must be positive");
        }
        Ok(o)
    }
}

/// Builds the release `zk-server` and `xtask`; a debug build of this program then runs
/// `xtask <command> <args>` from the release build and returns `false` (the work is
/// done), a release build returns `true` (go on here).
pub(crate) fn in_release_build(command: &[&str], args: &[String]) -> Result<bool> {
    if std::env::var_os(REEXEC_ENV).is_some() {
        return Ok(true);
    }
    super::run(super::cargo().args(["build", "--release", "-p", "zk-server", "-p", "xtask"]))?;
    if !cfg!(debug_assertions) {
        return Ok(true);
    }
    let release = target_dir()?.join("release/xtask");
    eprintln!("re-running from the release build: {}", release.display());
    let status = Command::new(&release)
        .args(command)
        .args(args)
        .env(REEXEC_ENV, "1")
        .status()
        .with_context(|| format!("running {}", release.display()))?;
    if !status.success() {
        bail!("the benchmark failed ({status})");
    }
    Ok(false)
}

/// `cargo xtask bench [options]`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let target = target_dir()?;
    if !in_release_build(&["bench"], args)? {
        return Ok(());
    }
    let ours_bin = target.join("release/zk-server");
    if !ours_bin.is_file() {
        bail!("{} is missing after the build", ours_bin.display());
    }
    let java_cp = java_classpath()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let scratch = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
    super::remove_path(&scratch)?;
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let env = Env::new(opts, scratch.clone(), ours_bin, java_cp, args)?;
    let outcome = runtime.block_on(bench_all(&env));
    // Leaves nothing running: every server process is killed when its `Proc` drops.
    runtime.shutdown_timeout(Duration::from_secs(5));
    match outcome {
        Ok(()) if !env.opts.keep => super::remove_path(&scratch),
        Ok(()) => {
            eprintln!("kept {}", scratch.display());
            Ok(())
        }
        Err(e) => {
            // Keep the data and server logs for a look.
            for site in env.sites.values() {
                let _ = super::remove_path(&site.data);
            }
            eprintln!("server logs kept in {}", scratch.display());
            Err(e)
        }
    }
}

/// Cargo's target directory for this workspace (honours `CARGO_TARGET_DIR`).
pub(crate) fn target_dir() -> Result<PathBuf> {
    let out = super::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(super::root())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let key = "\"target_directory\":\"";
    let start = text
        .find(key)
        .context("cargo metadata names no target_directory")?
        + key.len();
    let len = text[start..]
        .find('"')
        .context("cargo metadata: unterminated target_directory")?;
    Ok(PathBuf::from(
        text[start..start + len].replace("\\\\", "\\"),
    ))
}

/// The classpath for Apache ZooKeeper's server, checked to exist, and `java` checked to run.
fn java_classpath() -> Result<String> {
    if !Path::new(ZK_JAR).is_file() {
        bail!("{ZK_JAR} is missing: this needs Debian's `zookeeper` package and a JRE");
    }
    let works = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !works {
        bail!(
            "`java` is missing or broken: this needs a JRE (apt-get install default-jre-headless)"
        );
    }
    let mut cp = ZK_JAR.to_string();
    if Path::new(ZK_LOG_JAR).is_file() {
        cp.push(':');
        cp.push_str(ZK_LOG_JAR);
    }
    Ok(cp)
}

/// Where one server lives: its port, `zoo.cfg` and data directory.
struct Site {
    port: u16,
    cfg: PathBuf,
    cfg_text: String,
    data: PathBuf,
}

impl Site {
    fn new(scratch: &Path, kind: Kind) -> Result<Site> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free loopback port")?
            .port();
        let data = scratch.join(format!("data-{}", kind.name()));
        let cfg = scratch.join(format!("zoo-{}.cfg", kind.name()));
        let cfg_text = zoo_cfg(&data, port);
        std::fs::write(&cfg, &cfg_text).with_context(|| format!("writing {}", cfg.display()))?;
        Ok(Site {
            port,
            cfg,
            cfg_text,
            data,
        })
    }

    /// A fresh, empty data directory.
    fn reset_data(&self) -> Result<()> {
        super::remove_path(&self.data)?;
        std::fs::create_dir_all(&self.data)
            .with_context(|| format!("creating {}", self.data.display()))
    }
}

/// The `zoo.cfg` both servers get; only `dataDir` and `clientPort` differ between them.
/// Default snapCount and preAllocSize. maxClientCnxns=0 (no per-IP limit): the watcher
/// test opens one session per watcher from 127.0.0.1. No admin server (HTTP port).
fn zoo_cfg(data: &Path, port: u16) -> String {
    format!(
        "tickTime=2000\n\
         dataDir={}\n\
         clientPort={port}\n\
         clientPortAddress=127.0.0.1\n\
         forceSync=yes\n\
         4lw.commands.whitelist=*\n\
         maxClientCnxns=0\n\
         admin.enableServer=false\n",
        data.display()
    )
}

/// What every phase shares.
struct Env {
    opts: Options,
    args: Vec<String>,
    started: Instant,
    scratch: PathBuf,
    sites: BTreeMap<Kind, Site>,
    ours_bin: PathBuf,
    java_cp: String,
}

impl Env {
    fn new(
        opts: Options,
        scratch: PathBuf,
        ours_bin: PathBuf,
        java_cp: String,
        args: &[String],
    ) -> Result<Env> {
        let mut sites = BTreeMap::new();
        for kind in [Kind::Ours, Kind::ZooKeeper] {
            if opts.only.is_none_or(|only| only == kind) {
                sites.insert(kind, Site::new(&scratch, kind)?);
            }
        }
        Ok(Env {
            opts,
            args: args.to_vec(),
            started: Instant::now(),
            scratch,
            sites,
            ours_bin,
            java_cp,
        })
    }

    fn site(&self, kind: Kind) -> &Site {
        &self.sites[&kind]
    }

    fn say(&self, msg: impl std::fmt::Display) {
        eprintln!("[{:6.1}s] {msg}", self.started.elapsed().as_secs_f64());
    }

    fn secs(&self) -> Duration {
        Duration::from_secs_f64(self.opts.secs)
    }

    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.opts.warmup)
    }
}

/// A server process, killed (and reaped) when dropped if still running.
struct Proc {
    kind: Kind,
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(env: &Env, kind: Kind, tag: &str) -> Result<Proc> {
        let log = env.scratch.join(format!("{}-{tag}.log", kind.name()));
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = match kind {
            Kind::Ours => {
                let mut cmd = Command::new(&env.ours_bin);
                cmd.env("RUST_LOG", "info");
                cmd
            }
            Kind::ZooKeeper => {
                // The JVM's defaults, as Debian's zkServer.sh runs it (no -Xmx).
                let mut cmd = Command::new("java");
                cmd.arg("-cp")
                    .arg(&env.java_cp)
                    .arg(format!("-Dzookeeper.log.dir={}", env.scratch.display()))
                    .arg(ZK_MAIN);
                cmd
            }
        };
        let site = env.site(kind);
        let child = cmd
            .arg(&site.cfg)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {kind}: {cmd:?}"))?;
        Ok(Proc {
            kind,
            port: site.port,
            child,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
    fn status_kib(&self, field: &str) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{path} has no {field}"))
    }

    fn rss_mib(&self) -> Result<f64> {
        Ok(self.status_kib("VmRSS")? as f64 / 1024.0)
    }

    /// Fails, with the end of the server's log, if it has exited.
    fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited unexpectedly ({status}); end of {}:\n{}",
                self.kind,
                self.log.display(),
                tail(&self.log, 30)
            );
        }
        Ok(())
    }

    /// SIGTERM, then waits (SIGKILL after `STOP_TIMEOUT`). Returns how long it took and
    /// whether the process exited by itself.
    async fn stop(&mut self) -> Result<(Duration, bool)> {
        let started = Instant::now();
        if self.child.try_wait()?.is_some() {
            return Ok((Duration::ZERO, true));
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        while started.elapsed() < STOP_TIMEOUT {
            if self.child.try_wait()?.is_some() {
                return Ok((started.elapsed(), true));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok((started.elapsed(), false))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `zk_znode_count` from `mntr`.
async fn znode_count(port: u16) -> Result<u64> {
    let mntr = four_letter(std::net::SocketAddr::from(([127, 0, 0, 1], port)), "mntr").await?;
    mntr.lines()
        .find_map(|l| l.strip_prefix("zk_znode_count")?.trim().parse().ok())
        .context("mntr has no zk_znode_count")
}

/// Waits until the server answers `ruok` with `imok`.
async fn wait_ready(p: &mut Proc) -> Result<Duration> {
    let port = p.port;
    let started = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        p.alive()?;
        if four_letter(std::net::SocketAddr::from(([127, 0, 0, 1], port)), "ruok")
            .await
            .is_ok_and(|answer| answer.trim() == "imok")
        {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "{} did not answer ruok within {READY_TIMEOUT:?}; end of {}:\n{}",
        p.kind,
        p.log.display(),
        tail(&p.log, 30)
    )
}

/// A new session; `eager` gives up at the first refused connection.
async fn connect(port: u16, eager: bool) -> Result<zk::Client> {
    let mut connector = zk::Client::connector().with_session_timeout(SESSION_TIMEOUT);
    if eager {
        connector = connector.with_fail_eagerly();
    }
    let addr = format!("127.0.0.1:{port}");
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(&addr)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(anyhow!("connecting to {addr}: {e}")),
        Err(_) => bail!("connecting to {addr}: no session within {CONNECT_TIMEOUT:?}"),
    }
}

/// `n` sessions, opened 100 at a time.
pub(crate) async fn connect_many(port: u16, n: usize) -> Result<Vec<zk::Client>> {
    let mut clients = Vec::with_capacity(n);
    while clients.len() < n {
        let batch = (n - clients.len()).min(100);
        let handles: Vec<_> = (0..batch)
            .map(|_| tokio::spawn(connect(port, false)))
            .collect();
        for handle in handles {
            clients.push(handle.await??);
        }
    }
    Ok(clients)
}

/// Creates every path (pipelined, 256 at a time); an existing node is fine.
pub(crate) async fn create_all(client: &zk::Client, paths: &[String]) -> Result<()> {
    for chunk in paths.chunks(256) {
        let pending: Vec<_> = chunk
            .iter()
            .map(|path| client.create(path, &VALUE, OPEN))
            .collect();
        for (result, path) in tokio::time::timeout(CONNECT_TIMEOUT, futures_join(pending))
            .await
            .context("creating setup znodes timed out")?
            .into_iter()
            .zip(chunk)
        {
            match result {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => bail!("creating {path}: {e}"),
            }
        }
    }
    Ok(())
}

/// Deletes `paths` (those already gone are fine), each client a share of them with 256
/// requests in flight.
pub(crate) async fn delete_all(clients: &[zk::Client], paths: Vec<String>) -> Result<()> {
    let share = paths.len().div_ceil(clients.len().max(1)).max(1);
    let mut tasks = Vec::new();
    for (client, part) in clients.iter().zip(paths.chunks(share)) {
        let (client, part) = (client.clone(), part.to_vec());
        tasks.push(tokio::spawn(async move {
            for chunk in part.chunks(256) {
                let pending: Vec<_> = chunk.iter().map(|path| client.delete(path, None)).collect();
                for (result, path) in futures_join(pending).await.into_iter().zip(chunk) {
                    match result {
                        Ok(()) | Err(zk::Error::NoNode) => {}
                        Err(e) => bail!("deleting {path}: {e}"),
                    }
                }
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await.context("a delete task failed")??;
    }
    Ok(())
}

/// Awaits futures in order (their requests were sent when they were made).
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::with_capacity(futures.len());
    for future in futures {
        out.push(future.await);
    }
    out
}

/// One kind of request.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Op {
    Create,
    /// Creates with one parent per session, nothing deleted: the tree grows through the
    /// measurements (and the snapshots with it), as an application's would.
    Grow,
    SetData,
    GetData,
    Exists,
    Mix,
}

impl Op {
    const ALL: [Op; 6] = [
        Op::Create,
        Op::Grow,
        Op::SetData,
        Op::GetData,
        Op::Exists,
        Op::Mix,
    ];

    /// The order they run in: creates last. What each create measurement made is deleted
    /// after it (`measure`), so no other benchmark runs on a tree grown by creates; the
    /// growing tree's creates come last of all.
    const RUN_ORDER: [Op; 6] = [
        Op::SetData,
        Op::GetData,
        Op::Exists,
        Op::Mix,
        Op::Create,
        Op::Grow,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Grow => "create, a parent per session, tree kept",
            Op::SetData => "setData",
            Op::GetData => "getData",
            Op::Exists => "exists",
            Op::Mix => "mix 90% getData / 10% setData",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Grow => "grow",
            Op::SetData => "setdata",
            Op::GetData => "getdata",
            Op::Exists => "exists",
            Op::Mix => "mix",
        }
    }

    /// The throughput target for it: writes 1.5×, reads (and the read-heavy mix) 2×.
    fn throughput_target(self) -> f64 {
        match self {
            Op::Create | Op::Grow | Op::SetData => 1.5,
            Op::GetData | Op::Exists | Op::Mix => 2.0,
        }
    }
}

/// What a measurement's workers do.
pub(crate) struct Work {
    pub(crate) op: Op,
    pub(crate) keys: Arc<Vec<String>>,
    /// Parent of the znodes `create` makes.
    pub(crate) prefix: String,
    /// Requests each session keeps outstanding (workers `c * outstanding ..` are session
    /// `c`'s).
    pub(crate) outstanding: usize,
}

fn next_random(state: &mut u64) -> u64 {
    // xorshift64*
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

async fn do_op(
    client: &zk::Client,
    work: &Work,
    worker: usize,
    seq: u64,
    rng: &mut u64,
) -> Result<(), zk::Error> {
    let random = next_random(rng);
    let key = &work.keys[(random % work.keys.len() as u64) as usize];
    match work.op {
        Op::Create => {
            let path = format!("{}/w{worker}-{seq}", work.prefix);
            client.create(&path, &VALUE, OPEN).await.map(drop)
        }
        Op::Grow => {
            let session = worker / work.outstanding.max(1);
            let path = format!("{}/s{session}/w{worker}-{seq}", work.prefix);
            client.create(&path, &VALUE, OPEN).await.map(drop)
        }
        Op::SetData => client.set_data(key, &VALUE, None).await.map(drop),
        Op::GetData => client.get_data(key).await.map(drop),
        Op::Exists => match client.check_stat(key).await? {
            Some(_) => Ok(()),
            None => Err(zk::Error::NoNode),
        },
        Op::Mix if (random >> 32) % 10 == 0 => client.set_data(key, &VALUE, None).await.map(drop),
        Op::Mix => client.get_data(key).await.map(drop),
    }
}

/// What one measurement saw.
pub(crate) struct Sample {
    pub(crate) ops: u64,
    pub(crate) secs: f64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// Per completed request in the window, in µs, when asked for.
    pub(crate) latencies: Vec<u32>,
    /// Requests each worker made, in worker order (for creates: the names it used).
    pub(crate) attempts: Vec<u64>,
}

impl Sample {
    pub(crate) fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    pub(crate) fn percentile(&self, p: usize) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        match sorted.len() {
            0 => f64::NAN,
            n => f64::from(sorted[(n * p / 100).min(n - 1)]),
        }
    }
}

/// Runs `outstanding` workers per client, each one request at a time, for the warmup and
/// then the measured window; counts what completes inside the window.
pub(crate) async fn drive(
    clients: &[zk::Client],
    outstanding: usize,
    work: Arc<Work>,
    warmup: Duration,
    window: Duration,
    record: bool,
) -> Result<Sample> {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let mut handles: Vec<JoinHandle<(Vec<u32>, u64)>> = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        for k in 0..outstanding {
            let worker = c * outstanding + k;
            let (client, work) = (client.clone(), work.clone());
            let (measuring, stop, count) = (measuring.clone(), stop.clone(), count.clone());
            let (errors, first_error) = (errors.clone(), first_error.clone());
            handles.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut rng = 0x9e37_79b9_7f4a_7c15_u64
                    ^ (worker as u64 + 1).wrapping_mul(0xff51_afd7_ed55_8ccd);
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let result = do_op(&client, &work, worker, seq, &mut rng).await;
                    seq += 1;
                    match result {
                        Ok(()) if measuring.load(Ordering::Relaxed) => {
                            count.fetch_add(1, Ordering::Relaxed);
                            if record {
                                let micros = started.elapsed().as_micros();
                                latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                            }
                        }
                        Ok(()) => {}
                        Err(e) => {
                            let seen = errors.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut first) = first_error.lock() {
                                first.get_or_insert_with(|| format!("{}: {e}", work.op.name()));
                            }
                            if seen > 1000 {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
                (latencies, seq)
            }));
        }
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    measuring.store(false, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let ops = count.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    let mut latencies = Vec::new();
    let mut attempts = Vec::new();
    let mut stuck = 0;
    for mut handle in handles {
        match tokio::time::timeout_at(deadline, &mut handle).await {
            Ok(Ok((mut own, seq))) => {
                latencies.append(&mut own);
                attempts.push(seq);
            }
            Ok(Err(e)) => bail!("a load generator task failed: {e}"),
            Err(_) => {
                handle.abort();
                stuck += 1;
            }
        }
    }
    if stuck > 0 {
        bail!(
            "{stuck} request(s) got no answer within {DRAIN_TIMEOUT:?} after the window \
             ({}): the server stalled",
            work.op.name()
        );
    }
    let first_error = first_error.lock().ok().and_then(|mut f| f.take());
    Ok(Sample {
        ops,
        secs,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        latencies,
        attempts,
    })
}

/// Measured values by metric key, per server; problems noticed.
#[derive(Default)]
struct Results {
    values: BTreeMap<(Kind, String), f64>,
    problems: Vec<String>,
    /// The disk under both data directories, as `fsync_probe` found it.
    disk: Option<String>,
}

/// What one txn's fsync costs on the disk under the data directories: 2,000 appends of
/// 200 bytes to a file of 4 MiB set aside beforehand (as both servers' logs are), each
/// followed by `fdatasync`. The floor under every acknowledged write's latency at 1×1.
fn fsync_probe(dir: &Path) -> Result<String> {
    use std::io::Write as _;
    let path = dir.join("fsync-probe");
    let mut file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    file.set_len(4 << 20)?;
    file.sync_all()?;
    let record = [b'r'; 200];
    let mut took: Vec<f64> = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let started = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        took.push(started.elapsed().as_secs_f64() * 1e6);
    }
    drop(file);
    std::fs::remove_file(&path)?;
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    Ok(format!(
        "a 200-byte append and fdatasync to a set-aside file in the data directories' file \
         system: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs (2,000 in a row, before the servers \
         start)",
        at(0.5),
        at(0.99),
        at(1.0)
    ))
}

impl Results {
    fn set(&mut self, kind: Kind, key: impl Into<String>, value: f64) {
        self.values.insert((kind, key.into()), value);
    }

    fn get(&self, kind: Kind, key: &str) -> Option<f64> {
        self.values.get(&(kind, key.to_string())).copied()
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

async fn bench_all(env: &Env) -> Result<()> {
    for (kind, site) in &env.sites {
        env.say(format!(
            "{kind} ({}): {}:\n{}",
            kind.label(),
            site.cfg.display(),
            site.cfg_text.trim_end()
        ));
    }
    let mut results = Results {
        disk: Some(fsync_probe(&env.scratch).context("measuring the disk")?),
        ..Results::default()
    };
    if let Some(disk) = &results.disk {
        env.say(format!("disk: {disk}"));
    }
    let kinds: Vec<Kind> = env.sites.keys().copied().collect();
    let mut loads = vec![format!("at the start {}", loadavg())];
    ops_phase(env, &kinds, &mut results)
        .await
        .context("request benchmarks")?;
    loads.push(format!("after the request benchmarks {}", loadavg()));
    if env.opts.znodes > 0 {
        for &kind in &kinds {
            load_suite(env, kind, &mut results)
                .await
                .with_context(|| format!("{kind}: loading and restart"))?;
            loads.push(format!("after loading {kind} {}", loadavg()));
        }
    }
    let report = report(env, &results, &kinds, &loads);
    println!("\n{report}");
    let path = env
        .opts
        .report
        .clone()
        .unwrap_or_else(|| super::root().join("target/bench-report.md"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    env.say(format!("wrote {}", path.display()));
    Ok(())
}

/// Closes sessions and waits (at most 10 s) until the server has confirmed each close, so
/// that none is left reconnecting to a port after its server stops.
async fn close_all(env: &Env, kind: Kind, clients: Vec<zk::Client>, r: &mut Results) {
    let mut states: Vec<zk::StateWatcher> = clients.iter().map(zk::Client::state_watcher).collect();
    drop(clients);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut open = 0;
    for state in &mut states {
        while !state.peek_state().is_terminated() {
            if tokio::time::timeout_at(deadline, state.changed())
                .await
                .is_err()
            {
                open += 1;
                break;
            }
        }
    }
    if open > 0 {
        let problem = format!("{kind}: {open} session(s) not closed within 10 s of closing them");
        env.say(&problem);
        r.problems.push(problem);
    }
}

/// A server in the request benchmarks.
struct Live {
    kind: Kind,
    proc: Proc,
    admin: zk::Client,
    clients: Vec<zk::Client>,
}

/// Request latency and throughput, then watchers, on fresh servers, all running at once;
/// each measurement runs on one server after the other, alternating which goes first, each
/// once the last one's leftovers are done (`settle`).
async fn ops_phase(env: &Env, kinds: &[Kind], r: &mut Results) -> Result<()> {
    let keys: Arc<Vec<String>> = Arc::new((0..KEYS).map(|i| format!("/bench/k/k{i:04}")).collect());
    let parents: Vec<String> = ["/bench", "/bench/k", "/bench/c", "/bench/watched"]
        .map(String::from)
        .to_vec();
    let max_clients = env.opts.clients.iter().copied().max().unwrap_or(1);
    let mut live = Vec::new();
    for &kind in kinds {
        env.site(kind).reset_data()?;
        let mut proc = Proc::spawn(env, kind, "ops")?;
        let ready = wait_ready(&mut proc).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        env.say(format!(
            "{kind}: answering ruok after {:.2}s (pid {}, RSS {:.1} MiB)",
            ready.as_secs_f64(),
            proc.pid(),
            proc.rss_mib()?
        ));
        let admin = connect(proc.port, false).await?;
        create_all(&admin, &parents).await?;
        create_all(&admin, &keys).await?;
        let clients = connect_many(proc.port, max_clients).await?;
        env.say(format!(
            "{kind}: {KEYS} keys written, {max_clients} sessions open"
        ));
        live.push(Live {
            kind,
            proc,
            admin,
            clients,
        });
    }

    let mut shapes = vec![(1, 1)];
    shapes.extend(env.opts.clients.iter().map(|&n| (n, env.opts.outstanding)));
    let mut turn = 0;
    for op in Op::RUN_ORDER
        .into_iter()
        .filter(|op| env.opts.ops.contains(op))
    {
        for &(n, outstanding) in &shapes {
            let mut order: Vec<usize> = (0..live.len()).collect();
            if turn % 2 == 1 {
                order.reverse();
            }
            turn += 1;
            for i in order {
                let pids: Vec<u32> = live.iter().map(|l| l.proc.pid()).collect();
                settle(env, &pids).await;
                measure(env, &mut live[i], op, n, outstanding, &keys, r).await?;
            }
        }
    }
    for server in &mut live {
        let clients = std::mem::take(&mut server.clients);
        close_all(env, server.kind, clients, r).await;
    }
    if env.opts.watchers > 0 && env.opts.watch_rounds > 0 {
        for server in &mut live {
            watch_suite(env, server.kind, &server.admin, &mut server.proc, r).await?;
        }
    }
    for server in live {
        let Live {
            kind,
            mut proc,
            admin,
            ..
        } = server;
        close_all(env, kind, vec![admin], r).await;
        let (took, clean) = proc.stop().await?;
        if !clean {
            r.problems.push(format!(
                "{kind}: did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed"
            ));
        }
        env.say(format!("{kind}: stopped in {:.2}s", took.as_secs_f64()));
    }
    Ok(())
}

/// CPU time (user + system, in clock ticks) a process has used, from `/proc/<pid>/stat`.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Before a measurement, what the last one left behind is let finish, so it is not counted
/// against the next server: dirty pages are written out (`sync`: a server's snapshot or
/// preallocated log still being flushed slows the other's fsyncs) and both servers are
/// waited for until they use under 7% of a CPU (a snapshot being written, a JVM
/// collecting), 10 s at most.
async fn settle(env: &Env, pids: &[u32]) {
    let _ = tokio::task::spawn_blocking(|| Command::new("sync").status()).await;
    let started = Instant::now();
    let ticks_per_sec = 100; // USER_HZ on Linux
    let window = Duration::from_millis(300);
    loop {
        let before: Vec<Option<u64>> = pids.iter().map(|&p| cpu_ticks(p)).collect();
        tokio::time::sleep(window).await;
        let busiest = pids
            .iter()
            .zip(&before)
            .filter_map(|(&p, b)| Some(cpu_ticks(p)?.saturating_sub((*b)?)))
            .max()
            .unwrap_or(0);
        // Ticks in the window against 7% of it.
        if busiest as f64 <= 0.07 * window.as_secs_f64() * ticks_per_sec as f64 {
            return;
        }
        if started.elapsed() > Duration::from_secs(10) {
            env.say(format!(
                "a server still busy ({busiest} ticks in {window:?}) after 10 s; measuring anyway"
            ));
            return;
        }
    }
}

/// One latency (1×1) or throughput measurement of one server.
async fn measure(
    env: &Env,
    server: &mut Live,
    op: Op,
    n: usize,
    outstanding: usize,
    keys: &Arc<Vec<String>>,
    r: &mut Results,
) -> Result<()> {
    let kind = server.kind;
    let prefix = format!("/bench/c/{}-{n}x{outstanding}", op.key());
    if op == Op::Create {
        create_all(&server.admin, std::slice::from_ref(&prefix)).await?;
    }
    if op == Op::Grow {
        let mut parents = vec![prefix.clone()];
        parents.extend((0..n).map(|session| format!("{prefix}/s{session}")));
        create_all(&server.admin, &parents).await?;
    }
    let work = Arc::new(Work {
        op,
        keys: keys.clone(),
        prefix: prefix.clone(),
        outstanding,
    });
    let latency = n == 1 && outstanding == 1;
    let sample = drive(
        &server.clients[..n],
        outstanding,
        work,
        env.warmup(),
        env.secs(),
        latency,
    )
    .await
    .with_context(|| format!("{kind}"))?;
    server.proc.alive()?;
    let mut line = format!(
        "{kind}: {} {n}x{outstanding}: {:.0} ops/s",
        op.name(),
        sample.rate()
    );
    if latency {
        let (p50, p99) = (sample.percentile(50), sample.percentile(99));
        write!(line, ", p50 {p50:.0} µs, p99 {p99:.0} µs")?;
        r.set(kind, format!("lat.{}.p50", op.key()), p50);
        r.set(kind, format!("lat.{}.p99", op.key()), p99);
    } else {
        r.set(kind, format!("tput.{}.{n}", op.key()), sample.rate());
    }
    if sample.errors > 0 {
        let problem = format!(
            "{kind}: {} {n}x{outstanding}: {} failed request(s), first: {}",
            op.name(),
            sample.errors,
            sample.first_error.as_deref().unwrap_or("?")
        );
        write!(line, " ({} errors)", sample.errors)?;
        r.problems.push(problem);
    }
    env.say(line);
    if op == Op::Create {
        // Every measurement starts from the same tree: what this one created goes.
        let paths: Vec<String> = sample
            .attempts
            .iter()
            .enumerate()
            .flat_map(|(worker, &n)| {
                let prefix = &prefix;
                (0..n).map(move |seq| format!("{prefix}/w{worker}-{seq}"))
            })
            .collect();
        let created = paths.len();
        delete_all(&server.clients[..n], paths)
            .await
            .with_context(|| format!("{kind}: deleting what the create benchmark made"))?;
        server
            .admin
            .delete(&prefix, None)
            .await
            .with_context(|| format!("{kind}: deleting {prefix}"))?;
        env.say(format!(
            "{kind}: deleted what its {created} create requests made"
        ));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// W sessions watch one znode (getData with a watch); one setData; time to the last event.
async fn watch_suite(
    env: &Env,
    kind: Kind,
    writer: &zk::Client,
    p: &mut Proc,
    r: &mut Results,
) -> Result<()> {
    const PATH: &str = "/bench/watched";
    let started = Instant::now();
    let watchers = connect_many(p.port, env.opts.watchers).await?;
    env.say(format!(
        "{kind}: {} watcher sessions open in {:.2}s",
        watchers.len(),
        started.elapsed().as_secs_f64()
    ));
    let (mut lasts, mut medians) = (Vec::new(), Vec::new());
    for round in 1..=env.opts.watch_rounds {
        let registering: Vec<JoinHandle<Result<zk::OneshotWatcher, zk::Error>>> = watchers
            .iter()
            .map(|client| {
                let client = client.clone();
                tokio::spawn(async move {
                    client
                        .get_and_watch_data(PATH)
                        .await
                        .map(|(_, _, watcher)| watcher)
                })
            })
            .collect();
        let mut registered = Vec::with_capacity(registering.len());
        for handle in registering {
            let watcher = tokio::time::timeout(WATCH_TIMEOUT, handle)
                .await
                .context("getData with a watch timed out")??
                .map_err(|e| anyhow!("getData with a watch on {PATH}: {e}"))?;
            registered.push(watcher);
        }
        let waiting: Vec<JoinHandle<(Instant, zk::EventType)>> = registered
            .into_iter()
            .map(|watcher| {
                tokio::spawn(async move {
                    let event = watcher.changed().await;
                    (Instant::now(), event.event_type)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let fired = Instant::now();
        writer
            .set_data(PATH, &VALUE, None)
            .await
            .map_err(|e| anyhow!("setData {PATH}: {e}"))?;
        let acked = fired.elapsed();
        let deadline = tokio::time::Instant::now() + WATCH_TIMEOUT;
        let (mut times, mut missing, mut wrong) = (Vec::new(), 0, 0);
        for mut handle in waiting {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok((at, event))) => {
                    if event != zk::EventType::NodeDataChanged {
                        wrong += 1;
                    }
                    times.push(at.saturating_duration_since(fired));
                }
                _ => {
                    handle.abort();
                    missing += 1;
                }
            }
        }
        p.alive()?;
        if missing > 0 || wrong > 0 {
            r.problems.push(format!(
                "{kind}: watch round {round}: {missing} of {} watchers got no event within \
                 {WATCH_TIMEOUT:?}, {wrong} got another event type than NodeDataChanged",
                watchers.len()
            ));
        }
        times.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let last = times.last().copied().map_or(f64::NAN, ms);
        let median = times.get(times.len() / 2).copied().map_or(f64::NAN, ms);
        env.say(format!(
            "{kind}: watch round {round}: {} events, setData acked after {:.2} ms, median \
             event {median:.2} ms, last {last:.2} ms",
            times.len(),
            ms(acked)
        ));
        lasts.push(last);
        medians.push(median);
    }
    let middle = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    r.set(kind, "watch.last", middle(&mut lasts));
    r.set(kind, "watch.median", middle(&mut medians));
    close_all(env, kind, watchers, r).await;
    Ok(())
}

/// The path of the `i`th loaded znode: 1000 children per parent.
fn load_path(i: u64) -> String {
    format!("/load/p{:04}/n{i:07}", i / 1000)
}

/// RSS before and after loading Z znodes, then the restart time with them.
async fn load_suite(env: &Env, kind: Kind, r: &mut Results) -> Result<()> {
    let n = env.opts.znodes;
    let site = env.site(kind);
    site.reset_data()?;
    let mut p = Proc::spawn(env, kind, "load")?;
    wait_ready(&mut p).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = p.rss_mib()?;
    r.set(kind, "rss.before", before);
    env.say(format!(
        "{kind}: fresh server, RSS {before:.1} MiB; loading {n} znodes"
    ));

    let admin = connect(p.port, false).await?;
    let parents: Vec<String> = std::iter::once("/load".to_string())
        .chain((0..n.div_ceil(1000)).map(|p| format!("/load/p{p:04}")))
        .collect();
    create_all(&admin, &parents).await?;
    let clients = connect_many(p.port, env.opts.load_sessions).await?;
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let mut handles = Vec::new();
    for client in &clients {
        for _ in 0..env.opts.load_outstanding {
            let client = client.clone();
            let (next, done) = (next.clone(), done.clone());
            let (errors, first_error) = (errors.clone(), first_error.clone());
            handles.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let path = load_path(i);
                    match client.create(&path, &VALUE, OPEN).await {
                        Ok(_) => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut first) = first_error.lock() {
                                first.get_or_insert_with(|| format!("create {path}: {e}"));
                            }
                            return;
                        }
                    }
                }
            }));
        }
    }
    let started = Instant::now();
    let (mut last_done, mut last_progress, mut last_report) = (0, Instant::now(), Instant::now());
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now_done = done.load(Ordering::Relaxed);
        if errors.load(Ordering::Relaxed) > 0 {
            let first = first_error.lock().ok().and_then(|mut f| f.take());
            break Err(anyhow!(
                "{} create(s) failed after {now_done} succeeded; first: {}",
                errors.load(Ordering::Relaxed),
                first.unwrap_or_default()
            ));
        }
        if let Err(e) = p.alive() {
            break Err(e);
        }
        if now_done >= n {
            break Ok(());
        }
        if now_done > last_done {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL_TIMEOUT {
            break Err(anyhow!(
                "no create completed for {STALL_TIMEOUT:?} after {now_done} of {n}: the server stalled"
            ));
        }
        if last_report.elapsed() >= Duration::from_secs(3) {
            let secs = started.elapsed().as_secs_f64();
            env.say(format!(
                "{kind}: loaded {now_done}/{n} ({:.0}%), {:.0} creates/s, RSS {:.1} MiB",
                now_done as f64 * 100.0 / n as f64,
                now_done as f64 / secs,
                p.rss_mib().unwrap_or(f64::NAN)
            ));
            last_report = Instant::now();
        }
        last_done = now_done;
    };
    if outcome.is_err() {
        for handle in &handles {
            handle.abort();
        }
    }
    outcome?;
    for handle in handles {
        handle.await?;
    }
    let load_secs = started.elapsed().as_secs_f64();
    r.set(kind, "load.secs", load_secs);
    r.set(kind, "load.rate", n as f64 / load_secs);
    close_all(env, kind, clients, r).await;
    let count = znode_count(p.port).await?;
    env.say(format!(
        "{kind}: loaded {n} znodes in {load_secs:.1}s ({:.0} creates/s); mntr zk_znode_count {count}",
        n as f64 / load_secs
    ));
    // Let background work (a snapshot in progress, closing sessions) settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = p.rss_mib()?;
    let peak = p.status_kib("VmHWM")? as f64 / 1024.0;
    r.set(kind, "rss.after", after);
    r.set(kind, "rss.peak", peak);
    let mut line = format!("{kind}: RSS with {n} znodes {after:.1} MiB (peak {peak:.1} MiB)");
    if kind == Kind::ZooKeeper {
        // Informational: the JVM's footprint once garbage is collected.
        let status = run_bounded(
            Command::new("jcmd").args([&p.pid().to_string(), "GC.run"]),
            Duration::from_secs(60),
        )
        .await;
        match status {
            Ok(()) => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let gc = p.rss_mib()?;
                r.set(kind, "rss.gc", gc);
                write!(line, ", {gc:.1} MiB after a full GC (jcmd GC.run)")?;
            }
            Err(e) => write!(line, " (jcmd GC.run failed: {e:#})")?,
        }
    }
    env.say(line);
    close_all(env, kind, vec![admin], r).await;

    let (took, clean) = p.stop().await?;
    if !clean {
        r.problems.push(format!(
            "{kind}: did not exit within {STOP_TIMEOUT:?} of SIGTERM with {n} znodes; killed"
        ));
    }
    r.set(kind, "stop.secs", took.as_secs_f64());
    env.say(format!(
        "{kind}: stopped (SIGTERM) in {:.2}s; restarting",
        took.as_secs_f64()
    ));
    drop(p);

    // A new attempt (session + getData) every 20 ms, each allowed 2 s, the first success
    // ends it: a connection accepted while the server is still loading may hang rather
    // than fail, and must not hold up the attempts after it.
    let probe = Arc::new(load_path(n / 2));
    let started = Instant::now();
    let mut p = Proc::spawn(env, kind, "restart")?;
    let mut attempts = tokio::task::JoinSet::new();
    let mut every = tokio::time::interval(Duration::from_millis(20));
    let mut last_error = String::new();
    let client = loop {
        tokio::select! {
            _ = every.tick() => {
                p.alive()?;
                if started.elapsed() > RESTART_TIMEOUT {
                    bail!(
                        "no answer to getData {probe} within {RESTART_TIMEOUT:?} of the restart; \
                         last error: {last_error}; end of {}:\n{}",
                        p.log.display(),
                        tail(&p.log, 30)
                    );
                }
                if attempts.len() < 100 {
                    let (port, probe) = (site.port, probe.clone());
                    attempts.spawn(async move {
                        let attempt = async {
                            let client = connect(port, true).await?;
                            let (data, _) = client
                                .get_data(&probe)
                                .await
                                .map_err(|e| anyhow!("getData {probe}: {e}"))?;
                            if data != VALUE {
                                bail!("getData {probe} after the restart returned other data");
                            }
                            Ok(client)
                        };
                        tokio::time::timeout(Duration::from_secs(2), attempt)
                            .await
                            .unwrap_or_else(|_| Err(anyhow!("attempt timed out")))
                    });
                }
            }
            Some(done) = attempts.join_next() => match done {
                Ok(Ok(client)) => break client,
                Ok(Err(e)) => last_error = format!("{e:#}"),
                Err(e) => last_error = format!("{e}"),
            }
        }
    };
    let restart = started.elapsed().as_secs_f64();
    attempts.abort_all();
    while attempts.join_next().await.is_some() {}
    r.set(kind, "restart.secs", restart);
    let count = znode_count(p.port).await?;
    let rss = p.rss_mib()?;
    r.set(kind, "rss.restarted", rss);
    env.say(format!(
        "{kind}: restarted with {n} znodes: getData answered after {restart:.2}s; \
         zk_znode_count {count}, RSS {rss:.1} MiB"
    ));
    close_all(env, kind, vec![client], r).await;
    // Sessions of attempts cut short close by themselves once dropped.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, clean) = p.stop().await?;
    if !clean {
        r.problems.push(format!(
            "{kind}: did not exit within {STOP_TIMEOUT:?} of SIGTERM after the restart; killed"
        ));
    }
    drop(p);
    site.reset_data()
}

/// Runs a command to completion, killing it after `timeout`.
async fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<()> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!("{cmd:?} failed with {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("{cmd:?} did not finish within {timeout:?}")
}

/// How a row's numbers read.
#[derive(Clone, Copy)]
enum Unit {
    Micros,
    OpsPerSec,
    MiB,
    Secs,
    Millis,
}

impl Unit {
    fn format(self, v: f64) -> String {
        if !v.is_finite() {
            return "-".into();
        }
        match self {
            Unit::Micros | Unit::OpsPerSec => thousands(v.round() as u64),
            Unit::MiB => format!("{v:.1}"),
            Unit::Secs => format!("{v:.2}"),
            Unit::Millis => format!("{v:.1}"),
        }
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The target for a ratio (ours / Apache ZooKeeper's).
#[derive(Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

struct Row {
    label: String,
    key: String,
    unit: Unit,
    target: Option<Target>,
}

fn rows(opts: &Options) -> Vec<Row> {
    let row = |label: String, key: String, unit, target| Row {
        label,
        key,
        unit,
        target,
    };
    let mut rows = Vec::new();
    for op in Op::ALL.into_iter().filter(|op| opts.ops.contains(op)) {
        rows.push(row(
            format!("{} p50 latency, 1×1 (µs)", op.name()),
            format!("lat.{}.p50", op.key()),
            Unit::Micros,
            None,
        ));
        rows.push(row(
            format!("{} p99 latency, 1×1 (µs)", op.name()),
            format!("lat.{}.p99", op.key()),
            Unit::Micros,
            Some(Target::AtMost(0.5)),
        ));
        for &n in &opts.clients {
            rows.push(row(
                format!("{} throughput, {n}×{} (ops/s)", op.name(), opts.outstanding),
                format!("tput.{}.{n}", op.key()),
                Unit::OpsPerSec,
                Some(Target::AtLeast(op.throughput_target())),
            ));
        }
    }
    let z = opts.znodes;
    let rest = [
        (
            "RSS idle, fresh server (MiB)".to_string(),
            "rss.before",
            Unit::MiB,
            None,
        ),
        (
            format!("RSS with {z} znodes (MiB)"),
            "rss.after",
            Unit::MiB,
            Some(Target::AtMost(0.35)),
        ),
        (
            format!("peak RSS (VmHWM) while loading {z} (MiB)"),
            "rss.peak",
            Unit::MiB,
            None,
        ),
        (
            format!("RSS with {z} znodes after full GC, JVM only (MiB)"),
            "rss.gc",
            Unit::MiB,
            None,
        ),
        (
            format!("RSS after restart with {z} znodes (MiB)"),
            "rss.restarted",
            Unit::MiB,
            None,
        ),
        (
            format!("loading {z} znodes (creates/s)"),
            "load.rate",
            Unit::OpsPerSec,
            None,
        ),
        (
            format!("shutdown on SIGTERM with {z} znodes (s)"),
            "stop.secs",
            Unit::Secs,
            None,
        ),
        (
            format!("cold restart with {z} znodes, to first getData (s)"),
            "restart.secs",
            Unit::Secs,
            Some(Target::AtMost(0.5)),
        ),
        (
            format!(
                "{} watchers: setData to last event, median of rounds (ms)",
                opts.watchers
            ),
            "watch.last",
            Unit::Millis,
            None,
        ),
        (
            format!("{} watchers: setData to median event (ms)", opts.watchers),
            "watch.median",
            Unit::Millis,
            None,
        ),
    ];
    for (label, key, unit, target) in rest {
        rows.push(row(label, key.to_string(), unit, target));
    }
    rows
}

fn command_output(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

fn report(env: &Env, r: &Results, kinds: &[Kind], loads: &[String]) -> String {
    let o = &env.opts;
    let mut out = String::new();
    let _ = writeln!(out, "# Server benchmark: zk-rs vs Apache ZooKeeper 3.8.0\n");
    let _ = writeln!(
        out,
        "- run: `cargo xtask bench{}{}` at {}, commit {}, {} CPUs, took {:.0} s",
        if env.args.is_empty() { "" } else { " " },
        env.args.join(" "),
        command_output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        command_output(
            Command::new("git")
                .args(["rev-parse", "--short", "HEAD"])
                .current_dir(super::root())
        ),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        env.started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        out,
        "- servers: ours = `zk-server zoo.cfg` (release build); Apache ZooKeeper = `java -cp \
         zookeeper.jar:slf4j-simple.jar {ZK_MAIN} zoo.cfg` with the JVM's default flags \
         ({}), as Debian's zkServer.sh runs it; each its own process on 127.0.0.1 with a fresh \
         dataDir for each phase. Request benchmarks and watchers: both servers running, each \
         measurement on one then the other (alternating which goes first), each after `sync` and once both servers are idle (under 7% of a CPU); loading and restart: \
         one server at a time",
        command_output(Command::new("java").arg("-version"))
    );
    let _ = writeln!(
        out,
        "- zoo.cfg, the same for both but for dataDir and clientPort: {}",
        zoo_cfg(Path::new(""), 0)
            .lines()
            .filter(|l| !l.starts_with("dataDir") && !l.starts_with("clientPort="))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "- load generator: the `zookeeper-client` crate in one process, tokio with {} worker \
         threads, on the same {} CPUs as the server; 100-byte values; {KEYS} keys read and \
         written at random; each measurement {:.1} s after {:.1} s of warmup; latency: 1 session \
         × 1 outstanding request; throughput: N sessions × {} outstanding requests each; \
         order: setData, getData, exists, mix, create, then grow; what each create measurement \
         made is deleted before the next (a server's tree would otherwise grow by what it \
         managed to create, and the faster one would go on with a bigger tree to snapshot); \
         grow is the other shape: each session creates under a parent of its own and nothing \
         is deleted, so the tree (and each snapshot) grows through its measurements, by what \
         each server managed to create",
        o.threads,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.secs,
        o.warmup,
        o.outstanding
    );
    let _ = writeln!(
        out,
        "- loading: {} znodes (1000 per parent) by {} sessions × {} outstanding creates; RSS is \
         VmRSS of the server process 2 s after the last create; restart: SIGTERM, wait for exit, \
         start on the same dataDir, time from spawn until a new session's getData of one of the \
         znodes answers (page cache warm)",
        o.znodes, o.load_sessions, o.load_outstanding
    );
    let _ = writeln!(
        out,
        "- watchers: {} sessions each getData+watch one znode, one setData from another \
         session, time from the setData call to the last event; {} rounds",
        o.watchers, o.watch_rounds
    );
    if let Some(disk) = &r.disk {
        let _ = writeln!(out, "- disk: {disk}");
    }
    let _ = writeln!(out, "- load average (1, 5, 15 min): {}\n", loads.join("; "));

    let (ours, zk) = (Kind::Ours, Kind::ZooKeeper);
    let _ = writeln!(
        out,
        "| metric | {} | {} | ours / ZK | target | met |",
        ours.label(),
        zk.label()
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|:---:|");
    let (mut met, mut missed) = (0, 0);
    for row in rows(o) {
        let a = r.get(ours, &row.key);
        let b = r.get(zk, &row.key);
        if a.is_none() && b.is_none() {
            continue;
        }
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
            _ => None,
        };
        let (target, verdict) = match (row.target, ratio) {
            (Some(Target::AtLeast(t)), Some(x)) => (format!("≥ {t}×"), x >= t),
            (Some(Target::AtMost(t)), Some(x)) => (format!("≤ {t}×"), x <= t),
            (Some(Target::AtLeast(t)), None) => (format!("≥ {t}×"), false),
            (Some(Target::AtMost(t)), None) => (format!("≤ {t}×"), false),
            (None, _) => (String::new(), true),
        };
        let verdict = match (row.target, ratio) {
            (None, _) | (_, None) => "",
            _ if verdict => {
                met += 1;
                "yes"
            }
            _ => {
                missed += 1;
                "**no**"
            }
        };
        let cell = |v: Option<f64>| v.map_or("-".into(), |v| row.unit.format(v));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {target} | {verdict} |",
            row.label,
            cell(a),
            cell(b),
            ratio.map_or("-".into(), |x| format!("{x:.2}×"))
        );
    }
    let _ = writeln!(
        out,
        "\nTargets met: {met} of {}. The mix's target is the read target (it is 90% reads).",
        met + missed
    );
    if kinds.len() < 2 {
        let _ = writeln!(
            out,
            "Only {} was run (--only).",
            kinds
                .iter()
                .map(|k| k.label())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(out, "\n## Problems noticed\n");
    if r.problems.is_empty() {
        let _ = writeln!(
            out,
            "None: no failed request, stall, crash or missed watch event."
        );
    }
    for problem in &r.problems {
        let _ = writeln!(out, "- {problem}");
    }
    out
}
