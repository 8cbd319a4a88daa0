//! `cargo xtask diff [--seed N] [--ops N] [--sessions N] [--ensemble]`: a seeded random
//! differential test of our server against Apache ZooKeeper 3.8.0 (`--ensemble`: of their
//! three-member ensembles).
//!
//! Both servers run as child processes on loopback with the same `zoo.cfg` keys
//! (tickTime=2000, extendedTypesEnabled=true, every four-letter word allowed), each with its
//! own data directory. The same number of sessions is opened on each with the
//! `zookeeper-client` crate, and one seeded random sequence of operations runs on both, one
//! operation at a time (the two servers in parallel). Every answer is compared once it is
//! normalised: errors by kind, stats without ctime/mtime, zxids relative to the server's
//! zxid once the first sessions are open, ephemeral owners as "which of our sessions" rather than
//! raw ids, children and ephemerals sorted (ZooKeeper lists a `HashSet`'s order). After each
//! operation every session makes one request (a barrier: a server sends a session's
//! notifications before the answers to its later requests, and the client hands them to
//! the watchers before it completes those answers), then each watcher's new events are
//! drained without waiting and compared, per session and watcher, as (type, path).
//!
//! Things the client cannot observe the same way on both servers are kept out of the
//! random sequence rather than tolerated in the comparison:
//! - containers and TTL nodes are removed by a background sweep once a minute, at a time
//!   that differs between the two servers (and the removal takes a zxid, shifting every later
//!   one). So TTLs are one day long, and no znode is ever created under a container, so no
//!   container is ever eligible (ZooKeeper only removes containers that had a child);
//! - closing a session is asynchronous in the client (dropping it sends closeSession), so a
//!   reopen waits until the server's last zxid (`srvr`) has moved past the close before
//!   anything else runs.
//!
//! Orders that come from Java hash sets are compared as they are, since zk-server reproduces
//! them: a session close deletes its ephemerals (and so fires their events) in the order of
//! ZooKeeper's `HashSet` of the session's paths. (An `auth` ACL lists the session's
//! identities in its `ConcurrentHashMap`'s order, but each session here has one digest.)
//!
//! Intended differences, where zk-server answers as current ZooKeeper releases do and 3.8.0
//! had a bug fixed since, are left out of the comparison:
//! - ZOOKEEPER-4026 (fixed in 3.8.2 and 3.9): a `create2` inside a `multi` (the client
//!   sends every multi create that is not a container or TTL one as `create2`) is answered
//!   by 3.8.0 as a plain create, without its stat (the client reads an invalid one), and by
//!   zk-server with path and stat. Such a result is compared by its path; zk-server's must
//!   carry a stat;
//! - ZOOKEEPER-4655 (3.9): a watch notification's reply header carries the zxid of the txn
//!   that fired it (3.8.0 sends -1). Events are compared as (type, path), without zxids.
//! - ZOOKEEPER-4466 (3.9): watches of different modes that one session sets on one path
//!   (one-shot, persistent, persistent recursive) coexist in zk-server, while 3.8.0 kept the
//!   last mode set and so lost events the others were owed. The generator never gives a
//!   session a second mode on a path it watches (`zk-watch`'s model test checks 3.9's rules,
//!   and the `zookeeper-client` suite's `test_watcher_coexist_on_same_path` runs them).
//!
//! `--readable-acls` leaves out the one ACL choice (`auth:` ALL) that denies READ to some
//! sessions: Debian's 3.8.0-11+deb12u2 carries the CVE-2024-23944 fix, which drops a watch
//! event (using up a one-shot watch) when the watcher's session may not READ the znode;
//! upstream 3.8.0 and zk-server deliver it. `--check-watches` also compares `wchc` after
//! every op (3.8's `wchc` lists data watches only).
//!
//! The first difference stops the run with the op number, the op, both answers and the seed
//! to replay it.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zookeeper_client as zk;

use crate::ensemble::Compared;
use crate::servers::{ZOOKEEPER_JAR, four_letter};
use crate::{Scratch, cargo, root, run as run_cmd};

const USAGE: &str = "usage: cargo xtask diff [--seed N] [--ops N] [--sessions N] [--verbose] \
                     [--keep] [--check-watches] [--readable-acls] [--ensemble]";
/// The name of our side.
const OURS: &str = "zk-server";
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// Long enough never to expire during a run (see the module comment).
const TTL: Duration = Duration::from_secs(86_400);
/// The digest identity of the even-numbered sessions.
const DIGEST: &[u8] = b"differ:secret";
/// Caps on the watchers a session holds, so a long run stays cheap.
const MAX_PERSISTENT: usize = 3;
const MAX_ONESHOT: usize = 24;

struct Options {
    seed: u64,
    ops: usize,
    sessions: usize,
    verbose: bool,
    keep: bool,
    check_watches: bool,
    readable_acls: bool,
    /// Three-member ensembles of each server, the sessions on a follower.
    ensemble: bool,
}

impl Options {
    /// The command that runs this comparison again: the same seed, and every option that
    /// shapes what is run or compared.
    fn replay(&self) -> String {
        let mut command = format!(
            "cargo xtask diff --seed {} --ops {} --sessions {}",
            self.seed, self.ops, self.sessions
        );
        for (on, flag) in [
            (self.check_watches, " --check-watches"),
            (self.readable_acls, " --readable-acls"),
            (self.ensemble, " --ensemble"),
        ] {
            if on {
                command.push_str(flag);
            }
        }
        command
    }
}

fn parse_options(rest: &[String]) -> Result<Options> {
    let mut options = Options {
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007),
        ops: 2000,
        sessions: 4,
        verbose: false,
        keep: false,
        check_watches: false,
        ensemble: false,
        readable_acls: false,
    };
    let mut args = rest.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64> {
            let text = args
                .next()
                .with_context(|| format!("{name} needs a number\n{USAGE}"))?;
            text.parse()
                .with_context(|| format!("{name}: `{text}` is not a number\n{USAGE}"))
        };
        match arg.as_str() {
            "--seed" => options.seed = value("--seed")?,
            "--ops" => options.ops = value("--ops")? as usize,
            "--sessions" => options.sessions = value("--sessions")? as usize,
            "--verbose" | "-v" => options.verbose = true,
            "--keep" => options.keep = true,
            "--check-watches" => options.check_watches = true,
            "--readable-acls" => options.readable_acls = true,
            "--ensemble" => options.ensemble = true,
            _ => bail!("unexpected argument `{arg}`\n{USAGE}"),
        }
    }
    if options.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    Ok(options)
}

/// `cargo xtask diff`, with the options of [`USAGE`].
pub(crate) fn run(rest: &[String]) -> Result<()> {
    let options = parse_options(rest)?;
    eprintln!(
        "diff: seed {} ({} ops, {} sessions); replay with `{}`",
        options.seed,
        options.ops,
        options.sessions,
        options.replay()
    );
    if !Path::new(ZOOKEEPER_JAR).is_file() {
        bail!("{ZOOKEEPER_JAR} is missing: this needs Debian's `zookeeper` package and a JRE");
    }
    run_cmd(cargo().args(["build", "-p", "zk-server"]))?;
    let binary = target_dir().join("debug/zk-server");
    if !binary.is_file() {
        bail!("built zk-server but found no {}", binary.display());
    }
    let scratch = Scratch::new("diff")?;
    let compared = Compared::start(options.ensemble, &scratch.0, &binary)?;
    let (reference, ours) = compared.servers();
    eprintln!(
        "Apache ZooKeeper 3.8.0 on {}, zk-server on {}",
        reference.addr, ours.addr
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let outcome = runtime.block_on(differential(&options, reference.addr, ours.addr));
    runtime.shutdown_timeout(Duration::from_secs(5));
    let mut outcome = outcome;
    for server in [reference, ours] {
        if let Some(status) = server.exited() {
            let note = format!(
                "{} exited with {status}\n{}",
                server.name,
                server.log_tail()
            );
            outcome = outcome.context(note);
        }
    }
    drop(compared);
    if options.keep || outcome.is_err() {
        let kept = scratch.0.with_extension("kept");
        let _ = std::fs::remove_dir_all(&kept);
        if std::fs::rename(&scratch.0, &kept).is_ok() {
            eprintln!("server logs kept in {}", kept.display());
        }
    }
    outcome
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace) or `target/`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// The server's last processed zxid, from `srvr`.
async fn last_zxid(addr: SocketAddr) -> Result<i64> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"srvr").await?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let text = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .context("srvr timed out")?
        .context("srvr")?;
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix("Zxid: 0x"))
        .with_context(|| format!("srvr names no Zxid:\n{text}"))?;
    i64::from_str_radix(hex.trim(), 16).with_context(|| format!("srvr Zxid `{hex}`"))
}

// ---------------------------------------------------------------------------------------
// The random sequence

/// xorshift64*: small, deterministic, good enough to pick operations.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Persistent,
    PersistentSequential,
    Ephemeral,
    EphemeralSequential,
    Container,
    Ttl,
    TtlSequential,
}

impl Mode {
    fn sequential(self) -> bool {
        matches!(
            self,
            Mode::PersistentSequential | Mode::EphemeralSequential | Mode::TtlSequential
        )
    }

    fn options<'a>(self, acls: zk::Acls<'a>) -> zk::CreateOptions<'a> {
        match self {
            Mode::Persistent => zk::CreateMode::Persistent.with_acls(acls),
            Mode::PersistentSequential => zk::CreateMode::PersistentSequential.with_acls(acls),
            Mode::Ephemeral => zk::CreateMode::Ephemeral.with_acls(acls),
            Mode::EphemeralSequential => zk::CreateMode::EphemeralSequential.with_acls(acls),
            Mode::Container => zk::CreateMode::Container.with_acls(acls),
            Mode::Ttl => zk::CreateMode::Persistent.with_acls(acls).with_ttl(TTL),
            Mode::TtlSequential => zk::CreateMode::PersistentSequential
                .with_acls(acls)
                .with_ttl(TTL),
        }
    }
}

/// The ACLs the sequence picks from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AclChoice {
    AnyoneAll,
    /// world:anyone READ|ADMIN: writes and creates below fail, the ACL can be reset.
    ReadAdmin,
    /// world:anyone READ|WRITE|CREATE|ADMIN: deleting children fails.
    NoDelete,
    /// auth: (digest for the even sessions, InvalidAcl for the others).
    Creator,
    /// ip:127.0.0.1 ALL (every connection here comes from it).
    Loopback,
    /// ip:10.0.0.0/8 ALL plus world:anyone READ.
    OtherNet,
    /// An empty list (InvalidAcl).
    Empty,
    /// world:anyone READ: locked for good.
    ReadOnly,
}

impl AclChoice {
    fn acls(self) -> Vec<zk::Acl> {
        use zk::Permission as P;
        let world = |perm| zk::Acl::new(perm, zk::AuthId::anyone());
        match self {
            AclChoice::AnyoneAll => vec![world(P::ALL)],
            AclChoice::ReadAdmin => vec![world(P::READ | P::ADMIN)],
            AclChoice::NoDelete => vec![world(P::READ | P::WRITE | P::CREATE | P::ADMIN)],
            AclChoice::Creator => vec![zk::Acl::new(P::ALL, zk::AuthId::authed())],
            AclChoice::Loopback => vec![zk::Acl::new(P::ALL, zk::AuthId::new("ip", "127.0.0.1"))],
            AclChoice::OtherNet => vec![
                zk::Acl::new(P::ALL, zk::AuthId::new("ip", "10.0.0.0/8")),
                world(P::READ),
            ],
            AclChoice::Empty => vec![],
            AclChoice::ReadOnly => vec![world(P::READ)],
        }
    }
}

#[derive(Clone, Debug)]
enum MultiOp {
    Check {
        path: String,
        version: i32,
    },
    Create {
        path: String,
        data: String,
        mode: Mode,
    },
    SetData {
        path: String,
        data: String,
        version: Option<i32>,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        s: usize,
        path: String,
        data: String,
        mode: Mode,
        acl: AclChoice,
    },
    Delete {
        s: usize,
        path: String,
        version: Option<i32>,
    },
    SetData {
        s: usize,
        path: String,
        data: String,
        version: Option<i32>,
    },
    GetData {
        s: usize,
        path: String,
        watch: bool,
    },
    Exists {
        s: usize,
        path: String,
        watch: bool,
    },
    Children {
        s: usize,
        path: String,
        watch: bool,
    },
    GetAcl {
        s: usize,
        path: String,
    },
    SetAcl {
        s: usize,
        path: String,
        acl: AclChoice,
        version: Option<i32>,
    },
    Multi {
        s: usize,
        ops: Vec<MultiOp>,
    },
    Sync {
        s: usize,
        path: String,
    },
    Count {
        s: usize,
        path: String,
    },
    Ephemerals {
        s: usize,
        path: String,
    },
    Watch {
        s: usize,
        path: String,
        recursive: bool,
    },
    Reopen {
        s: usize,
    },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Delete { .. } => "delete",
            Op::SetData { .. } => "set_data",
            Op::GetData { watch: false, .. } => "get_data",
            Op::GetData { watch: true, .. } => "get_and_watch_data",
            Op::Exists { watch: false, .. } => "check_stat",
            Op::Exists { watch: true, .. } => "check_and_watch_stat",
            Op::Children { watch: false, .. } => "get_children",
            Op::Children { watch: true, .. } => "get_and_watch_children",
            Op::GetAcl { .. } => "get_acl",
            Op::SetAcl { .. } => "set_acl",
            Op::Multi { .. } => "multi",
            Op::Sync { .. } => "sync",
            Op::Count { .. } => "count_descendants_number",
            Op::Ephemerals { .. } => "list_ephemerals",
            Op::Watch {
                recursive: false, ..
            } => "watch(persistent)",
            Op::Watch {
                recursive: true, ..
            } => "watch(persistent recursive)",
            Op::Reopen { .. } => "close and reopen session",
        }
    }
}

/// What the generator knows, learnt only from answers both servers agreed on.
#[derive(Default)]
struct Knowledge {
    /// Last seen (version, aversion) of a path.
    versions: HashMap<String, (i32, i32)>,
    /// Containers that exist: nothing is created under them.
    containers: Vec<String>,
    /// Sequential znodes created (and not known deleted), newest last.
    sequential: Vec<String>,
}

impl Knowledge {
    fn learn(&mut self, outcome: &Outcome) {
        for (path, stat) in &outcome.stats {
            self.versions
                .insert(path.clone(), (stat.version, stat.aversion));
        }
        for (path, mode) in &outcome.created {
            if *mode == Mode::Container {
                self.containers.push(path.clone());
            }
            if mode.sequential() {
                self.sequential.push(path.clone());
                if self.sequential.len() > 64 {
                    self.sequential.remove(0);
                }
            }
        }
        for path in &outcome.deleted {
            self.containers.retain(|p| p != path);
            self.sequential.retain(|p| p != path);
            self.versions.remove(path);
        }
    }

    fn under_container(&self, path: &str) -> bool {
        let parent = &path[..path.rfind('/').unwrap_or(0)];
        self.containers.iter().any(|c| c == parent)
    }
}

struct Generator {
    rng: Rng,
    sessions: usize,
    /// Leave out ACLs that deny READ to some of the sessions (see `--readable-acls`).
    readable_acls: bool,
}

impl Generator {
    /// A path of the small namespace: /d0..d3, /dX/n0..n5, /dX/nY/k0..k1, sometimes a
    /// sequential znode created earlier.
    fn path(&mut self, known: &Knowledge) -> String {
        let d = self.rng.below(4);
        match self.rng.below(100) {
            0..15 if !known.sequential.is_empty() => {
                let i = self.rng.below(known.sequential.len());
                known.sequential[i].clone()
            }
            0..30 => format!("/d{d}"),
            30..80 => format!("/d{d}/n{}", self.rng.below(6)),
            _ => format!("/d{d}/n{}/k{}", self.rng.below(6), self.rng.below(2)),
        }
    }

    /// A path for reads: sometimes the root or /zookeeper.
    fn read_path(&mut self, known: &Knowledge) -> String {
        match self.rng.below(20) {
            0 => "/".into(),
            1 => "/zookeeper".into(),
            _ => self.path(known),
        }
    }

    /// A parent for sequential creates: /dX or /dX/nY.
    fn seq_prefix(&mut self) -> String {
        let d = self.rng.below(4);
        if self.rng.chance(40) {
            format!("/d{d}/s-")
        } else {
            format!("/d{d}/n{}/s-", self.rng.below(6))
        }
    }

    fn data(&mut self) -> String {
        match self.rng.below(6) {
            0 => String::new(),
            _ => format!("v{}", self.rng.below(1000)),
        }
    }

    /// None (-1), the last version seen (often right), or a wrong one.
    fn version(&mut self, known: &Knowledge, path: &str, acl: bool) -> Option<i32> {
        let seen = known
            .versions
            .get(path)
            .map(|&(v, a)| if acl { a } else { v });
        match self.rng.below(10) {
            0..3 => None,
            3..8 => Some(seen.unwrap_or(0)),
            _ => Some(seen.unwrap_or(0) + 1 + self.rng.below(2) as i32),
        }
    }

    fn mode(&mut self) -> Mode {
        match self.rng.below(20) {
            0..8 => Mode::Persistent,
            8..10 => Mode::PersistentSequential,
            10..14 => Mode::Ephemeral,
            14..16 => Mode::EphemeralSequential,
            16..18 => Mode::Container,
            18 => Mode::Ttl,
            _ => Mode::TtlSequential,
        }
    }

    fn acl(&mut self, for_set: bool) -> AclChoice {
        match self.rng.below(40) {
            0..24 => AclChoice::AnyoneAll,
            24..27 => AclChoice::ReadAdmin,
            27..30 => AclChoice::NoDelete,
            30..34 if self.readable_acls => AclChoice::AnyoneAll,
            30..34 => AclChoice::Creator,
            34..36 => AclChoice::Loopback,
            36..38 => AclChoice::OtherNet,
            38 if for_set => AclChoice::Empty,
            _ => AclChoice::ReadOnly,
        }
    }

    /// A create's path for `mode`, or None if it would go under a container.
    fn create_path(&mut self, known: &Knowledge, mode: Mode) -> Option<String> {
        let path = if mode.sequential() {
            self.seq_prefix()
        } else {
            self.path(known)
        };
        (!known.under_container(&path)).then_some(path)
    }

    fn next(&mut self, known: &Knowledge, reference: &Side) -> Op {
        let s = self.rng.below(self.sessions);
        let slot = &reference.slots[s];
        loop {
            let op = match self.rng.below(100) {
                0..24 => {
                    let mode = self.mode();
                    let Some(path) = self.create_path(known, mode) else {
                        continue;
                    };
                    let acl = if self.rng.chance(25) {
                        self.acl(false)
                    } else {
                        AclChoice::AnyoneAll
                    };
                    Op::Create {
                        s,
                        path,
                        data: self.data(),
                        mode,
                        acl,
                    }
                }
                24..36 => {
                    let path = self.path(known);
                    let version = self.version(known, &path, false);
                    Op::Delete { s, path, version }
                }
                36..46 => {
                    let path = self.path(known);
                    let version = self.version(known, &path, false);
                    Op::SetData {
                        s,
                        path,
                        data: self.data(),
                        version,
                    }
                }
                46..52 => Op::GetData {
                    s,
                    path: self.read_path(known),
                    watch: false,
                },
                52..56 => Op::Exists {
                    s,
                    path: self.read_path(known),
                    watch: false,
                },
                56..61 => Op::Children {
                    s,
                    path: self.read_path(known),
                    watch: false,
                },
                61..64 => Op::GetAcl {
                    s,
                    path: self.read_path(known),
                },
                64..68 => {
                    let path = self.path(known);
                    let version = self.version(known, &path, true);
                    Op::SetAcl {
                        s,
                        acl: self.acl(true),
                        path,
                        version,
                    }
                }
                68..76 => {
                    let n = 2 + self.rng.below(3);
                    let mut ops = Vec::with_capacity(n);
                    while ops.len() < n {
                        let path = self.path(known);
                        ops.push(match self.rng.below(4) {
                            0 => MultiOp::Check {
                                version: self.version(known, &path, false).unwrap_or(-1),
                                path,
                            },
                            1 => {
                                let mode = match self.rng.below(4) {
                                    0 => Mode::Ephemeral,
                                    1 => Mode::PersistentSequential,
                                    _ => Mode::Persistent,
                                };
                                let Some(path) = self.create_path(known, mode) else {
                                    continue;
                                };
                                MultiOp::Create {
                                    path,
                                    data: self.data(),
                                    mode,
                                }
                            }
                            2 => MultiOp::SetData {
                                version: self.version(known, &path, false),
                                data: self.data(),
                                path,
                            },
                            _ => MultiOp::Delete {
                                version: self.version(known, &path, false),
                                path,
                            },
                        });
                    }
                    Op::Multi { s, ops }
                }
                76..78 => Op::Sync {
                    s,
                    path: self.read_path(known),
                },
                78..80 => Op::Count {
                    s,
                    path: self.read_path(known),
                },
                80..82 => Op::Ephemerals {
                    s,
                    path: match self.rng.below(3) {
                        0 => "/".into(),
                        _ => format!("/d{}", self.rng.below(4)),
                    },
                },
                82..98 => {
                    let path = self.read_path(known);
                    let oneshot = slot.watchers.len() - slot.persistent();
                    let kind = self.rng.below(8);
                    let recursive = self.rng.chance(50);
                    let mode = match kind {
                        0..7 => "oneshot",
                        _ if recursive => "recursive",
                        _ => "persistent",
                    };
                    if slot.other_mode_on(&path, mode) {
                        continue;
                    }
                    match kind {
                        _ if oneshot >= MAX_ONESHOT => continue,
                        0..3 => Op::GetData {
                            s,
                            path,
                            watch: true,
                        },
                        3..5 => Op::Exists {
                            s,
                            path,
                            watch: true,
                        },
                        5..7 => Op::Children {
                            s,
                            path,
                            watch: true,
                        },
                        _ if slot.persistent() >= MAX_PERSISTENT => continue,
                        _ => Op::Watch { s, path, recursive },
                    }
                }
                _ => Op::Reopen { s },
            };
            return op;
        }
    }
}

// ---------------------------------------------------------------------------------------
// One server's sessions and watchers

type OneshotFuture = Pin<Box<dyn Future<Output = zk::WatchedEvent> + Send>>;

enum WatchKind {
    Oneshot(OneshotFuture),
    Persistent(zk::PersistentWatcher),
}

struct Watcher {
    label: String,
    /// The watched path and the watch's mode: "oneshot", "persistent" or "recursive".
    path: String,
    mode: &'static str,
    kind: WatchKind,
}

struct Slot {
    client: Option<zk::Client>,
    generation: usize,
    watchers: Vec<Watcher>,
    /// Watchers made so far in this session, to name the next one.
    made: usize,
}

impl Slot {
    /// Whether the session watches `path` in a mode other than `mode` (ZOOKEEPER-4466).
    fn other_mode_on(&self, path: &str, mode: &str) -> bool {
        self.watchers
            .iter()
            .any(|w| w.path == path && w.mode != mode)
    }

    fn persistent(&self) -> usize {
        self.watchers
            .iter()
            .filter(|w| matches!(w.kind, WatchKind::Persistent(_)))
            .count()
    }
}

struct Side {
    name: &'static str,
    /// zk-server rather than the reference: its answers have ZooKeeper's later fixes.
    ours: bool,
    addr: SocketAddr,
    slots: Vec<Slot>,
    /// Session id → "s<slot>.<generation>".
    labels: HashMap<i64, String>,
    base_zxid: i64,
}

/// The normalised answer of one op plus what the generator may learn from it.
#[derive(Default)]
struct Outcome {
    text: String,
    /// The error kind, if the op failed.
    error: Option<String>,
    stats: Vec<(String, zk::Stat)>,
    created: Vec<(String, Mode)>,
    deleted: Vec<String>,
}

impl Outcome {
    fn fail(error: &zk::Error) -> Outcome {
        Outcome {
            text: format!("error {error:?}"),
            error: Some(error_kind(error)),
            ..Outcome::default()
        }
    }
}

/// `NoNode`, `BadArguments`, ... (the variant's name).
fn error_kind(error: &zk::Error) -> String {
    let text = format!("{error:?}");
    let end = text.find(['(', ' ', '{']).unwrap_or(text.len());
    text[..end].to_string()
}

fn perms(p: zk::Permission) -> String {
    p.to_string()
}

impl Side {
    async fn connect(&self, slot: usize) -> Result<zk::Client> {
        // The digest is added once the session is up, not with `Connector::with_auth`:
        // that pipelines the auth packet right behind the ConnectRequest, and zk-server
        // (unlike ZooKeeper, which answers the connect first) answers the auth before the
        // ConnectResponse, so the client never sees its session.
        let connector = zk::Client::connector().with_session_timeout(SESSION_TIMEOUT);
        let target = self.addr.to_string();
        let client =
            match tokio::time::timeout(Duration::from_secs(15), connector.connect(&target)).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => bail!("{}: connecting to {target}: {e}", self.name),
                Err(_) => bail!(
                    "{}: connecting to {target}: no session within 15s",
                    self.name
                ),
            };
        if slot % 2 == 0 {
            tokio::time::timeout(Duration::from_secs(15), client.auth("digest", DIGEST))
                .await
                .context("digest auth timed out")?
                .with_context(|| format!("{}: digest auth", self.name))?;
        }
        Ok(client)
    }

    async fn open(name: &'static str, addr: SocketAddr, sessions: usize) -> Result<Side> {
        // ZooKeeper answers `ruok` before it serves; `srvr` names a zxid once it does.
        let deadline = Instant::now() + Duration::from_secs(60);
        let base_zxid = loop {
            match last_zxid(addr).await {
                Ok(zxid) => break zxid,
                Err(e) if Instant::now() >= deadline => return Err(e.context(name)),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let mut side = Side {
            name,
            ours: name == OURS,
            addr,
            slots: Vec::new(),
            labels: HashMap::new(),
            base_zxid,
        };
        for slot in 0..sessions {
            let client = side.connect(slot).await?;
            side.labels
                .insert(client.session_id().0, format!("s{slot}.0"));
            side.slots.push(Slot {
                client: Some(client),
                generation: 0,
                watchers: Vec::new(),
                made: 0,
            });
        }
        // Zxids count from here: the sessions' txns are applied on both sides alike, and
        // an ensemble's member may report its epoch's base before its first txn
        // (ZooKeeper's does once synced, ours does not), so the zxid read before them
        // is no common origin.
        side.base_zxid = last_zxid(addr).await.context(name)?;
        Ok(side)
    }

    fn client(&self, s: usize) -> Result<&zk::Client> {
        self.slots[s]
            .client
            .as_ref()
            .with_context(|| format!("{}: session slot {s} has no client", self.name))
    }

    fn zxid(&self, zxid: i64) -> String {
        format!("{:+}", zxid - self.base_zxid)
    }

    fn stat(&self, stat: &zk::Stat) -> String {
        let owner = match stat.ephemeral_owner {
            0 => "0".to_string(),
            id => self
                .labels
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("{id:#x}")),
        };
        format!(
            "{{czxid {} mzxid {} pzxid {} version {} cversion {} aversion {} owner {owner} \
             dataLength {} numChildren {}}}",
            self.zxid(stat.czxid),
            self.zxid(stat.mzxid),
            self.zxid(stat.pzxid),
            stat.version,
            stat.cversion,
            stat.aversion,
            stat.data_length,
            stat.num_children
        )
    }

    fn add_watcher(&mut self, s: usize, what: &str, path: &str, kind: WatchKind) {
        let slot = &mut self.slots[s];
        let label = format!("w{}:{what}:{path}", slot.made);
        slot.made += 1;
        let mode = match what {
            "persistent" => "persistent",
            "recursive" => "recursive",
            _ => "oneshot",
        };
        slot.watchers.push(Watcher {
            label,
            path: path.to_string(),
            mode,
            kind,
        });
    }

    /// Runs one op and returns its normalised answer.
    async fn exec(&mut self, op: &Op) -> Result<Outcome> {
        let mut out = Outcome::default();
        match op {
            Op::Create {
                s,
                path,
                data,
                mode,
                acl,
            } => {
                let acls = acl.acls();
                let options = mode.options(zk::Acls::new(&acls));
                match self
                    .client(*s)?
                    .create(path, data.as_bytes(), &options)
                    .await
                {
                    Ok((stat, sequence)) => {
                        let created = if mode.sequential() {
                            format!("{path}{sequence}")
                        } else {
                            path.clone()
                        };
                        out.text = format!("created {created} {}", self.stat(&stat));
                        out.stats.push((created.clone(), stat));
                        out.created.push((created, *mode));
                    }
                    Err(e) => return Ok(Outcome::fail(&e)),
                }
            }
            Op::Delete { s, path, version } => {
                match self.client(*s)?.delete(path, *version).await {
                    Ok(()) => {
                        out.text = "deleted".into();
                        out.deleted.push(path.clone());
                    }
                    Err(e) => return Ok(Outcome::fail(&e)),
                }
            }
            Op::SetData {
                s,
                path,
                data,
                version,
            } => match self
                .client(*s)?
                .set_data(path, data.as_bytes(), *version)
                .await
            {
                Ok(stat) => {
                    out.text = format!("set {}", self.stat(&stat));
                    out.stats.push((path.clone(), stat));
                }
                Err(e) => return Ok(Outcome::fail(&e)),
            },
            Op::GetData { s, path, watch } => {
                let client = self.client(*s)?.clone();
                let answer = if *watch {
                    match client.get_and_watch_data(path).await {
                        Ok((data, stat, watcher)) => {
                            self.add_watcher(
                                *s,
                                "data",
                                path,
                                WatchKind::Oneshot(Box::pin(watcher.changed())),
                            );
                            Ok((data, stat))
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    client.get_data(path).await
                };
                match answer {
                    Ok((data, stat)) => {
                        out.text = format!(
                            "data {:?} {}",
                            String::from_utf8_lossy(&data),
                            self.stat(&stat)
                        );
                        out.stats.push((path.clone(), stat));
                    }
                    Err(e) => return Ok(Outcome::fail(&e)),
                }
            }
            Op::Exists { s, path, watch } => {
                let client = self.client(*s)?.clone();
                let answer = if *watch {
                    match client.check_and_watch_stat(path).await {
                        Ok((stat, watcher)) => {
                            self.add_watcher(
                                *s,
                                "exists",
                                path,
                                WatchKind::Oneshot(Box::pin(watcher.changed())),
                            );
                            Ok(stat)
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    client.check_stat(path).await
                };
                match answer {
                    Ok(Some(stat)) => {
                        out.text = format!("exists {}", self.stat(&stat));
                        out.stats.push((path.clone(), stat));
                    }
                    Ok(None) => out.text = "does not exist".into(),
                    Err(e) => return Ok(Outcome::fail(&e)),
                }
            }
            Op::Children { s, path, watch } => {
                let client = self.client(*s)?.clone();
                let answer = if *watch {
                    match client.get_and_watch_children(path).await {
                        Ok((children, stat, watcher)) => {
                            self.add_watcher(
                                *s,
                                "children",
                                path,
                                WatchKind::Oneshot(Box::pin(watcher.changed())),
                            );
                            Ok((children, stat))
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    client.get_children(path).await
                };
                match answer {
                    Ok((mut children, stat)) => {
                        // ZooKeeper lists a HashSet's order.
                        children.sort();
                        out.text = format!("children {children:?} {}", self.stat(&stat));
                        out.stats.push((path.clone(), stat));
                    }
                    Err(e) => return Ok(Outcome::fail(&e)),
                }
            }
            Op::GetAcl { s, path } => match self.client(*s)?.get_acl(path).await {
                Ok((acls, stat)) => {
                    let acls: Vec<String> = acls
                        .iter()
                        .map(|a| format!("{}:{}:{}", a.scheme(), a.id(), perms(a.permission())))
                        .collect();
                    out.text = format!("acl {acls:?} {}", self.stat(&stat));
                    out.stats.push((path.clone(), stat));
                }
                Err(e) => return Ok(Outcome::fail(&e)),
            },
            Op::SetAcl {
                s,
                path,
                acl,
                version,
            } => {
                let acls = acl.acls();
                match self.client(*s)?.set_acl(path, &acls, *version).await {
                    Ok(stat) => {
                        out.text = format!("acl set {}", self.stat(&stat));
                        out.stats.push((path.clone(), stat));
                    }
                    Err(e) => return Ok(Outcome::fail(&e)),
                }
            }
            Op::Multi { s, ops } => return self.multi(*s, ops).await,
            Op::Sync { s, path } => match self.client(*s)?.sync(path).await {
                Ok(()) => out.text = "synced".into(),
                Err(e) => return Ok(Outcome::fail(&e)),
            },
            Op::Count { s, path } => match self.client(*s)?.count_descendants_number(path).await {
                Ok(n) => out.text = format!("descendants {n}"),
                Err(e) => return Ok(Outcome::fail(&e)),
            },
            Op::Ephemerals { s, path } => match self.client(*s)?.list_ephemerals(path).await {
                Ok(mut paths) => {
                    paths.sort();
                    out.text = format!("ephemerals {paths:?}");
                }
                Err(e) => return Ok(Outcome::fail(&e)),
            },
            Op::Watch { s, path, recursive } => {
                let mode = if *recursive {
                    zk::AddWatchMode::PersistentRecursive
                } else {
                    zk::AddWatchMode::Persistent
                };
                let client = self.client(*s)?.clone();
                match client.watch(path, mode).await {
                    Ok(watcher) => {
                        let what = if *recursive {
                            "recursive"
                        } else {
                            "persistent"
                        };
                        self.add_watcher(*s, what, path, WatchKind::Persistent(watcher));
                        out.text = "watching".into();
                    }
                    Err(e) => return Ok(Outcome::fail(&e)),
                }
            }
            Op::Reopen { s } => {
                self.reopen(*s).await?;
                out.text = format!("reopened as s{s}.{}", self.slots[*s].generation);
            }
        }
        Ok(out)
    }

    async fn multi(&mut self, s: usize, ops: &[MultiOp]) -> Result<Outcome> {
        let client = self.client(s)?.clone();
        let mut writer = client.new_multi_writer();
        let open = zk::Acls::anyone_all();
        for op in ops {
            let added = match op {
                MultiOp::Check { path, version } => writer.add_check_version(path, *version),
                MultiOp::Create { path, data, mode } => {
                    writer.add_create(path, data.as_bytes(), &mode.options(open))
                }
                MultiOp::SetData {
                    path,
                    data,
                    version,
                } => writer.add_set_data(path, data.as_bytes(), *version),
                MultiOp::Delete { path, version } => writer.add_delete(path, *version),
            };
            if let Err(e) = added {
                return Ok(Outcome::fail(&e));
            }
        }
        let mut out = Outcome::default();
        match writer.commit().await {
            Ok(results) => {
                let mut lines = Vec::new();
                for (op, result) in ops.iter().zip(&results) {
                    lines.push(match result {
                        zk::MultiWriteResult::Check => "check".to_string(),
                        zk::MultiWriteResult::Delete => {
                            if let MultiOp::Delete { path, .. } = op {
                                out.deleted.push(path.clone());
                            }
                            "delete".to_string()
                        }
                        zk::MultiWriteResult::Create { path, stat } => {
                            let mode = match op {
                                MultiOp::Create { mode, .. } => Some(*mode),
                                _ => None,
                            };
                            if let Some(mode) = mode {
                                out.created.push((path.clone(), mode));
                            }
                            let create2 = !matches!(
                                mode,
                                Some(Mode::Container | Mode::Ttl | Mode::TtlSequential)
                            );
                            if !create2 {
                                out.stats.push((path.clone(), *stat));
                                format!("create {path} {}", self.stat(stat))
                            } else if self.ours && stat.is_invalid() {
                                // ZOOKEEPER-4026: 3.8.0 has no stat here, zk-server must.
                                format!("create {path} (no stat)")
                            } else {
                                format!("create {path}")
                            }
                        }
                        zk::MultiWriteResult::SetData { stat } => {
                            if let MultiOp::SetData { path, .. } = op {
                                out.stats.push((path.clone(), *stat));
                            }
                            format!("set {}", self.stat(stat))
                        }
                        other => format!("{other:?}"),
                    });
                }
                if results.len() != ops.len() {
                    lines.push(format!("{} results for {} ops", results.len(), ops.len()));
                }
                out.text = format!("multi ok [{}]", lines.join("; "));
            }
            Err(zk::MultiWriteError::OperationFailed { index, source }) => {
                out.text = format!("multi failed at op {index}: {source:?}");
                out.error = Some(format!("multi:{}", error_kind(&source)));
            }
            Err(zk::MultiWriteError::RequestFailed { source }) => {
                out.text = format!("multi request failed: {source:?}");
                out.error = Some(format!("multi:{}", error_kind(&source)));
            }
        }
        Ok(out)
    }

    /// Closes session `s` (its watchers first), waits until the server has applied the
    /// close, and opens a new session in its place.
    async fn reopen(&mut self, s: usize) -> Result<()> {
        let before = last_zxid(self.addr).await?;
        let slot = &mut self.slots[s];
        slot.watchers.clear();
        drop(slot.client.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while last_zxid(self.addr).await? <= before {
            if Instant::now() >= deadline {
                bail!(
                    "{}: closing session s{s} applied nothing within 20s",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let client = self.connect(s).await?;
        let slot = &mut self.slots[s];
        slot.generation += 1;
        slot.made = 0;
        self.labels
            .insert(client.session_id().0, format!("s{s}.{}", slot.generation));
        slot.client = Some(client);
        Ok(())
    }

    /// The server's watch table by session (`wchc`), sessions named as ours, sorted.
    /// ZooKeeper 3.8's `wchc` lists only the data-watch table (child watches are left
    /// out), so this misses child watches on both sides.
    async fn watch_table(&self) -> Result<String> {
        let text = four_letter(self.addr, "wchc").await?;
        let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(path) = line.strip_prefix('\t') {
                table
                    .entry(current.clone())
                    .or_default()
                    .push(path.to_string());
            } else if let Some(hex) = line.trim().strip_prefix("0x") {
                current = i64::from_str_radix(hex, 16)
                    .ok()
                    .and_then(|id| self.labels.get(&id).cloned())
                    .unwrap_or_else(|| line.trim().to_string());
            }
        }
        Ok(table
            .into_iter()
            .map(|(session, mut paths)| {
                paths.sort();
                format!("{session}: {}", paths.join(" "))
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// One request on every session, so every notification sent before it has reached
    /// its watcher.
    async fn barrier(&self) -> Result<()> {
        for (s, slot) in self.slots.iter().enumerate() {
            if let Some(client) = &slot.client {
                client
                    .check_stat("/")
                    .await
                    .with_context(|| format!("{}: barrier on session s{s}", self.name))?;
            }
        }
        Ok(())
    }

    /// Every event that has reached a watcher, per session and watcher, in order. One-shot
    /// watchers that fired are forgotten.
    async fn drain(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        for (s, slot) in self.slots.iter_mut().enumerate() {
            let mut fired = Vec::new();
            for (i, watcher) in slot.watchers.iter_mut().enumerate() {
                let mut record = |e: zk::WatchedEvent| {
                    let state = if e.event_type == zk::EventType::Session {
                        format!(" {:?}", e.session_state)
                    } else {
                        String::new()
                    };
                    events.push(format!(
                        "s{s} {}: {}{state} {}",
                        watcher.label, e.event_type, e.path
                    ));
                };
                match &mut watcher.kind {
                    WatchKind::Oneshot(future) => {
                        if let Some(event) = poll_now(future.as_mut()).await {
                            record(event);
                            fired.push(i);
                        }
                    }
                    WatchKind::Persistent(persistent) => loop {
                        let next = {
                            let future = std::pin::pin!(persistent.changed());
                            poll_now(future).await
                        };
                        match next {
                            Some(event) => record(event),
                            None => break,
                        }
                    },
                }
            }
            for i in fired.into_iter().rev() {
                slot.watchers.remove(i);
            }
        }
        events
    }
}

/// Polls `future` once: its output if it is ready now.
async fn poll_now<F: Future + ?Sized>(mut future: Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(value) => Poll::Ready(Some(value)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

async fn exec_bounded(side: &mut Side, op: &Op) -> Result<Outcome> {
    match tokio::time::timeout(OP_TIMEOUT, side.exec(op)).await {
        Ok(outcome) => outcome,
        Err(_) => Ok(Outcome {
            text: format!("no answer within {OP_TIMEOUT:?}"),
            error: Some("Timeout".into()),
            ..Outcome::default()
        }),
    }
}

// ---------------------------------------------------------------------------------------
// The run

#[derive(Default)]
struct Tally {
    results: usize,
    events: usize,
    errors: BTreeMap<String, usize>,
    ops: BTreeMap<&'static str, usize>,
}

async fn differential(options: &Options, reference: SocketAddr, ours: SocketAddr) -> Result<()> {
    let (zk_side, our_side) = tokio::join!(
        Side::open("Apache ZooKeeper", reference, options.sessions),
        Side::open(OURS, ours, options.sessions)
    );
    let (mut zk_side, mut our_side) = (zk_side?, our_side?);
    if zk_side.base_zxid != our_side.base_zxid {
        eprintln!(
            "note: zxid once the sessions are open: ZooKeeper {:#x}, ours {:#x}",
            zk_side.base_zxid, our_side.base_zxid
        );
    }
    let started = Instant::now();
    let mut generator = Generator {
        rng: Rng::new(options.seed),
        sessions: options.sessions,
        readable_acls: options.readable_acls,
    };
    let mut known = Knowledge::default();
    let mut tally = Tally::default();
    let replay = options.replay();
    // The last few ops, for context in a report.
    let mut history: Vec<String> = Vec::new();
    for n in 1..=options.ops {
        let op = generator.next(&known, &zk_side);
        let (a, b) = tokio::join!(
            exec_bounded(&mut zk_side, &op),
            exec_bounded(&mut our_side, &op)
        );
        let (a, b) = (
            a.with_context(|| format!("op #{n} {op:?} (seed {})", options.seed))?,
            b.with_context(|| format!("op #{n} {op:?} (seed {})", options.seed))?,
        );
        if a.text != b.text {
            bail!(
                "{}",
                report(n, &op, &history, "answer", &a.text, &b.text, &replay)
            );
        }
        tally.results += 1;
        *tally.ops.entry(op.name()).or_default() += 1;
        if let Some(kind) = &a.error {
            *tally.errors.entry(kind.clone()).or_default() += 1;
        }
        known.learn(&a);

        let (x, y) = tokio::join!(zk_side.barrier(), our_side.barrier());
        x?;
        y?;
        let (ea, eb) = tokio::join!(zk_side.drain(), our_side.drain());
        if ea != eb {
            bail!(
                "{}",
                report(
                    n,
                    &op,
                    &history,
                    "watch events after it",
                    &ea.join("\n"),
                    &eb.join("\n"),
                    &replay
                )
            );
        }
        tally.events += ea.len();
        if options.check_watches {
            let (wa, wb) = tokio::join!(zk_side.watch_table(), our_side.watch_table());
            let (wa, wb) = (wa?, wb?);
            if wa != wb {
                bail!(
                    "{}",
                    report(
                        n,
                        &op,
                        &history,
                        "server watch table (wchc)",
                        &wa,
                        &wb,
                        &replay
                    )
                );
            }
        }
        if options.verbose {
            eprintln!(
                "#{n} {op:?}\n    zookeeper: {}\n    ours:      {}",
                a.text, b.text
            );
            for event in &ea {
                eprintln!("    event {event}");
            }
        }
        let mut line = format!("#{n} {op:?} -> {}", a.text);
        for event in &ea {
            let _ = write!(line, "\n      event {event}");
        }
        history.push(line);
        if history.len() > 8 {
            history.remove(0);
        }
        if n % 500 == 0 {
            eprintln!(
                "  {n} ops, {} events, {:.1}s",
                tally.events,
                started.elapsed().as_secs_f64()
            );
        }
    }
    // A final, slower look for stragglers: anything that arrives now came late.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (x, y) = tokio::join!(zk_side.barrier(), our_side.barrier());
    x?;
    y?;
    let (ea, eb) = tokio::join!(zk_side.drain(), our_side.drain());
    if ea != eb {
        bail!(
            "after the last op, late watch events differ (seed {})\n  zookeeper:\n{}\n  ours:\n{}",
            options.seed,
            indent(&ea.join("\n")),
            indent(&eb.join("\n"))
        );
    }
    tally.events += ea.len();
    println!(
        "diff: seed {}: {} ops, {} results and {} watch events compared, no difference ({:.1}s)",
        options.seed,
        options.ops,
        tally.results,
        tally.events,
        started.elapsed().as_secs_f64()
    );
    let ops: Vec<String> = tally.ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  ops: {}", ops.join(", "));
    let errors: Vec<String> = tally
        .errors
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("  errors (same on both): {}", errors.join(", "));
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn report(
    n: usize,
    op: &Op,
    history: &[String],
    what: &str,
    reference: &str,
    ours: &str,
    replay: &str,
) -> String {
    format!(
        "difference at op #{n}: {op:?}\n  {what}, Apache ZooKeeper 3.8.0:\n{}\n  {what}, \
         zk-server:\n{}\n  the ops before it:\n{}\n  replay: {replay}",
        indent(reference),
        indent(ours),
        indent(&history.join("\n"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The replay command (printed at the start and with the first difference) runs the
    /// same comparison: a run against ensembles replays against ensembles.
    #[test]
    fn the_replay_command_keeps_what_shapes_the_run() {
        let args = |line: &str| {
            line.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let options = parse_options(&args("--seed 11 --ops 5000 --ensemble --verbose")).unwrap();
        assert_eq!(
            options.replay(),
            "cargo xtask diff --seed 11 --ops 5000 --sessions 4 --ensemble"
        );
        let again = options.replay();
        let replayed = parse_options(&args(again.trim_start_matches("cargo xtask diff"))).unwrap();
        assert_eq!(replayed.replay(), again);
        let all = parse_options(&args("--seed 2 --check-watches --readable-acls")).unwrap();
        assert_eq!(
            all.replay(),
            "cargo xtask diff --seed 2 --ops 2000 --sessions 4 --check-watches --readable-acls"
        );
    }
}
