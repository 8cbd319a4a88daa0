//! `cargo xtask compat-clients`: unmodified ZooKeeper clients run the same commands against
//! our server and against Apache ZooKeeper 3.8.0, and every answer must match once times,
//! zxids and session ids are normalised.
//!
//! - `zkCli.sh` (the Java client): scripted sessions on stdin, one case per session, each
//!   command followed by `printwatches` (a client-local command whose fixed answer marks where
//!   the previous command's output ends), plus a few one-shot `zkCli.sh -server ... cmd`
//!   runs. Watch events are printed by the client's event thread, racing the main thread, so
//!   they are compared as one list per session rather than per command.
//! - `cli_mt` (the C client): one line at a time on stdin, waiting for each asynchronous
//!   answer (`rc = `) and then for the output to go quiet.
//! - kazoo (Python): `xtask/python/kazoo_check.py`, which checks its own expectations and
//!   prints one normalised line per check; the lines must also match Apache ZooKeeper's.
//! - the `zookeeper-client` crate (Rust): its own integration suite, unmodified, run once
//!   against each server through a `docker` shim (`zookeeper_client_suite`); every test must
//!   pass on our server unless listed as an intended difference, and tests that fail on
//!   Apache ZooKeeper 3.8.0 are reported. Only with `--only zookeeper-client` (or `all`).
//! - `zk-cli` (our shell): the zkCli.sh sessions again, zkCli.sh and zk-cli each against a
//!   fresh Apache ZooKeeper, so that only the shells differ. `--record-cli` writes zkCli.sh's
//!   answers to `cli/tests/zkcli/`, where `cargo test -p zk-cli` checks zk-cli against our
//!   server without Java.
//!
//! Where zk-server follows a fix ZooKeeper made after 3.8.0, the answers that differ are
//! listed in `INTENDED` with the exact lines they add and why; they are reported, not
//! failed.
//!
//! Nothing is installed unless `--install` is given.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::ensemble::Compared;
use crate::servers::{ServerProc, ZOOKEEPER_JAR, stop_group, wait_for_exit};
use crate::{Scratch, cargo, root, run};

mod kazoo_suite;
mod secure_cli;
mod zookeeper_client_suite;

const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";
const CLI_MT: &str = "/usr/lib/zookeeper/bin/cli_mt";
const KAZOO_SCRIPT: &str = "xtask/python/kazoo_check.py";
/// The venv `--install` puts kazoo in, under the cargo target directory.
const VENV: &str = "compat-clients-venv";

const USAGE: &str = "usage: cargo xtask compat-clients [--keep-going] [--install] \
                     [--only zkcli,cli_mt,kazoo,zk-cli,zookeeper-client|all] [--verbose] [--keep] \
                     [--record-cli] [--zk-server PATH] [--ensemble] [--test NAME]...";
/// Where `--record-cli` writes zkCli.sh's answers for zk-cli's tests.
const CLI_TRANSCRIPTS: &str = "cli/tests/zkcli";

/// A client under test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    ZkCli,
    CliMt,
    Kazoo,
    ZkRsCli,
    ZookeeperCrate,
    KazooSuite,
    SecureCli,
}

impl Client {
    /// Every client (`--only all`).
    const ALL: [Client; 7] = [
        Client::ZkCli,
        Client::SecureCli,
        Client::CliMt,
        Client::Kazoo,
        Client::ZkRsCli,
        Client::ZookeeperCrate,
        Client::KazooSuite,
    ];
    /// The clients run without `--only`: all but the zookeeper-client suite, which takes
    /// about as long as the others together (and minutes more to build the first time),
    /// and kazoo's own tests (which set up a venv of their own the first time).
    const DEFAULT: [Client; 5] = [
        Client::ZkCli,
        Client::SecureCli,
        Client::CliMt,
        Client::Kazoo,
        Client::ZkRsCli,
    ];

    fn name(self) -> &'static str {
        match self {
            Client::ZkCli => "zkCli.sh",
            Client::CliMt => "cli_mt",
            Client::Kazoo => "kazoo",
            Client::ZkRsCli => "zk-cli",
            Client::ZookeeperCrate => "zookeeper-client",
            Client::KazooSuite => "kazoo-suite",
            Client::SecureCli => "zkCli.sh-tls",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "zkcli" | "zkCli" | "zkCli.sh" | "java" => Client::ZkCli,
            "cli_mt" | "c" => Client::CliMt,
            "kazoo" | "python" => Client::Kazoo,
            "zk-cli" | "ours" => Client::ZkRsCli,
            "zookeeper-client" | "rust" => Client::ZookeeperCrate,
            "kazoo-suite" => Client::KazooSuite,
            "zkcli-tls" | "zkCli.sh-tls" => Client::SecureCli,
            _ => bail!(
                "unknown client `{s}` (zkcli, zkcli-tls, cli_mt, kazoo, zk-cli, \
                 zookeeper-client, kazoo-suite)\n{USAGE}"
            ),
        })
    }
}

struct Options {
    keep: bool,
    keep_going: bool,
    install: bool,
    verbose: bool,
    record_cli: bool,
    clients: Vec<Client>,
    /// `--zk-server PATH`: this binary instead of building the workspace's (set to the
    /// binary in use once it is known).
    zk_server: Option<PathBuf>,
    /// `--ensemble`: three-member ensembles of each server, the clients on a follower.
    ensemble: bool,
    /// `--test NAME` (repeatable): only these tests of the `zookeeper-client` suite.
    tests: Vec<String>,
}

fn parse_options(rest: &[String]) -> Result<Options> {
    let mut options = Options {
        keep: false,
        keep_going: false,
        install: false,
        verbose: false,
        record_cli: false,
        clients: Client::DEFAULT.to_vec(),
        zk_server: None,
        ensemble: false,
        tests: Vec::new(),
    };
    let mut args = rest.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--keep-going" => options.keep_going = true,
            "--keep" => options.keep = true,
            "--install" => options.install = true,
            "--verbose" | "-v" => options.verbose = true,
            "--record-cli" => options.record_cli = true,
            "--ensemble" => options.ensemble = true,
            "--test" => options.tests.push(args.next().context(USAGE)?.clone()),
            "--zk-server" => {
                let path = PathBuf::from(args.next().context(USAGE)?);
                let path = path
                    .canonicalize()
                    .with_context(|| format!("--zk-server {}", path.display()))?;
                options.zk_server = Some(path);
            }
            "--only" => {
                let list = args.next().context(USAGE)?;
                options.clients = if list == "all" {
                    Client::ALL.to_vec()
                } else {
                    list.split(',').map(Client::parse).collect::<Result<_>>()?
                };
            }
            _ => bail!("unexpected argument `{arg}`\n{USAGE}"),
        }
    }
    Ok(options)
}

/// `cargo xtask compat-clients [--keep-going] [--install] [--only LIST] [--verbose]`.
pub(crate) fn compat_clients(rest: &[String]) -> Result<()> {
    let mut options = parse_options(rest)?;
    let python = prerequisites(&options)?;

    let binary = match options.zk_server.clone() {
        Some(binary) => {
            if options.clients.contains(&Client::ZkRsCli)
                || options.clients.contains(&Client::SecureCli)
            {
                run(cargo().args(["build", "-p", "zk-cli"]))?;
            }
            binary
        }
        None => {
            run(cargo().args(["build", "-p", "zk-server", "-p", "zk-cli"]))?;
            target_dir().join("debug/zk-server")
        }
    };
    if !binary.is_file() {
        bail!("no zk-server binary at {}", binary.display());
    }
    options.zk_server = Some(binary.clone());

    let scratch = Scratch::new("compat-clients")?;
    if options.ensemble && options.clients.contains(&Client::ZookeeperCrate) {
        // Its suite starts its servers itself, through the docker shim.
        bail!("--ensemble runs zkcli, cli_mt, kazoo and zk-cli; not zookeeper-client");
    }
    let compared = Compared::start(options.ensemble, &scratch.0, &binary)?;
    let (reference, ours) = compared.servers();
    eprintln!(
        "Apache ZooKeeper 3.8.0 on {}, zk-server on {}",
        reference.addr, ours.addr
    );
    let servers = Servers {
        reference,
        ours,
        dir: scratch.0.clone(),
        options: &options,
    };

    let mut report = Report::default();
    for &client in &options.clients {
        if report.stopped {
            report.skipped.push(client.name().to_string());
            continue;
        }
        eprintln!("== {}", client.name());
        let clock = Instant::now();
        let result = match client {
            Client::ZkCli => zkcli(&servers, &mut report),
            Client::CliMt => cli_mt(&servers, &mut report),
            Client::Kazoo => kazoo(
                &servers,
                python.as_deref().context("kazoo was not checked for")?,
                &mut report,
            ),
            Client::ZkRsCli => zk_cli(&servers, &mut report),
            Client::ZookeeperCrate => zookeeper_client_suite::run(&servers, &mut report),
            Client::KazooSuite => kazoo_suite::run(&servers, &mut report),
            Client::SecureCli => secure_cli::run(&servers, &mut report),
        };
        eprintln!(
            "== {} took {:.0}s",
            client.name(),
            clock.elapsed().as_secs_f64()
        );
        if let Err(e) = result {
            report.record(Unit {
                client,
                case: "(harness)".into(),
                command: "(run)".into(),
                reference: String::new(),
                ours: format!("{e:#}"),
                pass: false,
                order_only: false,
                intended: None,
            });
            report.stopped |= !options.keep_going;
        }
        for server in [reference, ours] {
            if let Some(status) = server.exited() {
                report.record(Unit {
                    client,
                    case: "(server)".into(),
                    command: format!("{} still running", server.name),
                    reference: "running".into(),
                    ours: format!("exited with {status}\n{}", server.log_tail()),
                    pass: false,
                    order_only: false,
                    intended: None,
                });
                report.stopped = true;
            }
        }
    }
    drop(compared);
    if options.keep {
        let kept = scratch.0.with_extension("kept");
        let _ = std::fs::remove_dir_all(&kept);
        std::fs::rename(&scratch.0, &kept)?;
        eprintln!("kept the transcripts and server logs in {}", kept.display());
    }
    report.print(&options)
}

// ---------------------------------------------------------------------------------------
// Prerequisites

/// Checks every tool the selected clients need; returns the Python interpreter that has
/// kazoo (when kazoo is selected). Installs only with `--install`.
fn prerequisites(options: &Options) -> Result<Option<PathBuf>> {
    let mut missing = check_tools(options);
    if !missing.is_empty() && options.install {
        install(options, &missing)?;
        missing = check_tools(options);
    }
    if !missing.is_empty() {
        let mut text = String::from("compat-clients needs tools that are not installed:\n");
        for m in &missing {
            let _ = writeln!(text, "  {}: {}", m.what, m.fix);
        }
        let apt = apt_packages(&missing);
        text.push_str("install them with:\n");
        if !apt.is_empty() {
            let _ = writeln!(text, "  apt-get install {}", apt.join(" "));
        }
        if missing.iter().any(|m| m.pip) {
            text.push_str("  pip install kazoo\n");
        }
        text.push_str(
            "or run `cargo xtask compat-clients --install`, which runs these (apt-get update \
             first) but puts kazoo in a venv under the cargo target directory",
        );
        bail!(text);
    }
    Ok(if options.clients.contains(&Client::Kazoo) {
        kazoo_python()
    } else {
        None
    })
}

struct Missing {
    what: String,
    fix: &'static str,
    apt: &'static [&'static str],
    pip: bool,
}

fn check_tools(options: &Options) -> Vec<Missing> {
    let mut missing = Vec::new();
    let mut need = |ok: bool, what: &str, fix: &'static str, apt: &'static [&'static str]| {
        if !ok {
            missing.push(Missing {
                what: what.to_string(),
                fix,
                apt,
                pip: false,
            });
        }
    };
    let runs = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    };
    need(
        runs("java", &["-version"]),
        "java",
        "apt-get install default-jre-headless",
        &["default-jre-headless"],
    );
    need(
        Path::new(ZOOKEEPER_JAR).is_file(),
        ZOOKEEPER_JAR,
        "apt-get install zookeeper (Apache ZooKeeper 3.8.0, the reference server)",
        &["zookeeper"],
    );
    if options.clients.contains(&Client::ZkCli) {
        need(
            Path::new(ZKCLI).is_file(),
            ZKCLI,
            "apt-get install zookeeper",
            &["zookeeper"],
        );
    }
    if options.clients.contains(&Client::CliMt) {
        need(
            Path::new(CLI_MT).is_file(),
            CLI_MT,
            "apt-get install zookeeper-bin",
            &["zookeeper-bin"],
        );
    }
    if options.clients.contains(&Client::Kazoo) {
        let python = runs("python3", &["--version"]);
        need(
            python,
            "python3",
            "apt-get install python3 python3-venv",
            &["python3", "python3-venv"],
        );
        if python && kazoo_python().is_none() {
            missing.push(Missing {
                what: "kazoo (Python)".into(),
                fix: "pip install kazoo",
                apt: &[],
                pip: true,
            });
        }
    }
    missing
}

fn apt_packages(missing: &[Missing]) -> Vec<&'static str> {
    let mut packages: Vec<&'static str> = Vec::new();
    for package in missing.iter().flat_map(|m| m.apt.iter().copied()) {
        if !packages.contains(&package) {
            packages.push(package);
        }
    }
    packages
}

fn install(options: &Options, missing: &[Missing]) -> Result<()> {
    let apt = apt_packages(missing);
    if !apt.is_empty() {
        run(Command::new("apt-get").arg("update"))?;
        run(Command::new("apt-get").args(["install", "-y"]).args(&apt))?;
    }
    if options.clients.contains(&Client::Kazoo) && kazoo_python().is_none() {
        let venv = target_dir().join(VENV);
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run(Command::new(venv.join("bin/pip")).args(["install", "kazoo"]))?;
    }
    Ok(())
}

/// A Python that imports kazoo: the `--install` venv first, then `python3`.
fn kazoo_python() -> Option<PathBuf> {
    [target_dir().join(VENV).join("bin/python"), "python3".into()]
        .into_iter()
        .find(|python| {
            Command::new(python)
                .args(["-c", "import kazoo"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace) or `target/`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

// ---------------------------------------------------------------------------------------
// Processes

/// A client process fed lines on stdin, its stdout and stderr both going to one file.
struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    out: PathBuf,
}

impl Interactive {
    fn spawn(mut cmd: Command, out: &Path) -> Result<Self> {
        let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
        cmd.stdin(Stdio::piped())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let stdin = child.stdin.take();
        Ok(Self {
            child,
            stdin,
            out: out.to_path_buf(),
        })
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.out).unwrap_or_default()
    }

    fn send(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin already closed")?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .with_context(|| format!("sending `{line}`"))
    }

    /// Polls the output until `done` holds for it; false after `timeout`.
    fn wait_until(&mut self, timeout: Duration, done: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.bytes()) {
                return true;
            }
            let exited = self.child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() >= deadline {
                return done(&self.bytes());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Closes stdin, waits up to `timeout` for the process to exit (killing it after),
    /// and returns all it printed.
    fn finish(mut self, timeout: Duration) -> Vec<u8> {
        drop(self.stdin.take());
        if wait_for_exit(&mut self.child, timeout).is_none() {
            stop_group(&mut self.child, Duration::from_secs(2));
        }
        self.bytes()
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        stop_group(&mut self.child, Duration::from_secs(2));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------
// Results

/// One compared answer: a command's output from both servers.
struct Unit {
    client: Client,
    case: String,
    command: String,
    reference: String,
    ours: String,
    pass: bool,
    /// Set when the outputs differ only in the order of what ZooKeeper keeps in a hash set.
    order_only: bool,
    /// Set when the outputs differ exactly as an [`INTENDED`] entry says: why.
    intended: Option<&'static str>,
}

/// Answers where zk-server follows a fix that ZooKeeper made after 3.8.0, so that its answer
/// differs from 3.8.0's: (client, case, command, the lines ours adds, why). A unit passes
/// only if removing those lines from our answer gives 3.8.0's exactly.
const INTENDED: &[(Client, &str, &str, &[&str], &str)] = &[(
    Client::ZkCli,
    "watches-persistent",
    EVENTS_COMMAND,
    &["WatchedEvent state:SyncConnected type:NodeCreated path:/zc10/b"],
    "ZOOKEEPER-4466 (3.9): the session's persistent and recursive watches on /zc10 \
     coexist; 3.8.0 let the persistent one replace the recursive one, which then missed \
     /zc10/b's creation",
)];

/// The name zkCli sessions give the session's watch events.
const EVENTS_COMMAND: &str = "(watch events of the session, in order)";

/// Why `ours` differs from `reference` as intended, if it does exactly as listed.
fn intended(
    client: Client,
    case: &str,
    command: &str,
    reference: &str,
    ours: &str,
) -> Option<&'static str> {
    let (_, _, _, extra, why) = INTENDED
        .iter()
        .find(|(c, k, m, _, _)| *c == client && *k == case && *m == command)?;
    let mut lines: Vec<&str> = ours.lines().collect();
    for line in *extra {
        let at = lines.iter().position(|l| l == line)?;
        lines.remove(at);
    }
    (lines == reference.lines().collect::<Vec<_>>()).then_some(*why)
}

#[derive(Default)]
struct Report {
    units: Vec<Unit>,
    /// Set when a failure ends the run (no `--keep-going`).
    stopped: bool,
    skipped: Vec<String>,
}

impl Report {
    fn record(&mut self, unit: Unit) {
        self.units.push(unit);
    }

    /// Records a case's compared units; stops the run on a failure unless `keep_going`.
    fn record_case(&mut self, units: Vec<Unit>, keep_going: bool, verbose: bool) {
        let failed = units.iter().filter(|u| !u.pass).count();
        if let Some(first) = units.first() {
            eprintln!(
                "  {} {}: {} answers, {failed} differ",
                if failed == 0 { "ok  " } else { "FAIL" },
                first.case,
                units.len()
            );
        }
        for unit in &units {
            if verbose || !unit.pass {
                eprintln!("{}", unit.describe());
            }
        }
        self.units.extend(units);
        self.stopped |= failed > 0 && !keep_going;
    }

    fn print(&self, options: &Options) -> Result<()> {
        let failures: Vec<&Unit> = self.units.iter().filter(|u| !u.pass).collect();
        println!();
        println!("compat-clients: every difference between zk-server and Apache ZooKeeper 3.8.0");
        for unit in &failures {
            println!("{}", unit.describe());
        }
        if failures.is_empty() {
            println!("  (none)");
        }
        let intended: Vec<&Unit> = self.units.iter().filter(|u| u.intended.is_some()).collect();
        if !intended.is_empty() {
            println!();
            println!("intended differences (not failures: ZooKeeper's fixes after 3.8.0):");
            for unit in intended {
                println!("{}", unit.describe());
            }
        }
        let reordered: Vec<&Unit> = self.units.iter().filter(|u| u.order_only).collect();
        if !reordered.is_empty() {
            println!();
            println!(
                "same set, other order (not failures: ZooKeeper answers these from a hash set, \
                 so its order is unspecified):"
            );
            for unit in reordered {
                println!("{}", unit.describe());
            }
        }
        println!();
        println!("summary:");
        let (mut passed, mut failed) = (0, 0);
        for client in &options.clients {
            let of_client = self.units.iter().filter(|u| u.client == *client);
            let ok = of_client.clone().filter(|u| u.pass).count();
            let bad = of_client.count() - ok;
            passed += ok;
            failed += bad;
            let note = if self.skipped.iter().any(|s| s == client.name()) {
                " (not run: an earlier failure stopped the run; --keep-going runs everything)"
            } else {
                ""
            };
            println!("  {:<16} {ok} passed, {bad} failed{note}", client.name());
        }
        println!("compat-clients: {passed} passed, {failed} failed");
        if self.stopped && !options.keep_going && failed > 0 {
            println!("stopped at the first failing case; --keep-going reports every result");
        }
        if failed > 0 {
            bail!("{failed} answer(s) differ from Apache ZooKeeper 3.8.0");
        }
        Ok(())
    }
}

impl Unit {
    fn describe(&self) -> String {
        let indent = |text: &str| {
            if text.is_empty() {
                "      (nothing)\n".to_string()
            } else {
                text.lines().map(|l| format!("      {l}\n")).collect()
            }
        };
        let mark = match (self.pass, self.order_only, self.intended) {
            (true, _, Some(_)) => "intended",
            (true, false, None) => "ok",
            (true, true, None) => "same set",
            (false, _, _) => "DIFF",
        };
        let why = self
            .intended
            .map(|why| format!(": {why}"))
            .unwrap_or_default();
        if self.pass && !self.order_only && self.intended.is_none() {
            format!(
                "  [{mark}] {} / {} / {}\n{}",
                self.client.name(),
                self.case,
                self.command,
                indent(&self.ours)
            )
        } else {
            format!(
                "  [{mark}] {} / {} / {}{why}\n    Apache ZooKeeper:\n{}    zk-server:\n{}",
                self.client.name(),
                self.case,
                self.command,
                indent(&self.reference),
                indent(&self.ours)
            )
        }
    }
}

/// The two servers and the run's scratch directory and options.
struct Servers<'a> {
    reference: &'a ServerProc,
    ours: &'a ServerProc,
    dir: PathBuf,
    options: &'a Options,
}

impl Servers<'_> {
    /// Replaces each server's address with `<server>`, and in an ensemble's membership
    /// (`server.N=host:quorumPort:electionPort:role`) the peer ports, which differ
    /// between the two ensembles, with `<peer>`.
    fn unaddress(&self, text: &str) -> String {
        let mut text = text.to_string();
        for server in [self.reference, self.ours] {
            text = text.replace(&server.addr.to_string(), "<server>");
        }
        if !self.options.ensemble {
            return text;
        }
        let lines: Vec<String> = text
            .split('\n')
            .map(|line| match line.split_once('=') {
                Some((key, value)) if key.trim_start().starts_with("server.") => {
                    let role = value.rsplit_once(':').map_or("", |(_, role)| role);
                    format!("{key}=<peer>:{role}")
                }
                _ => line.to_string(),
            })
            .collect();
        lines.join("\n")
    }
}

/// Pairs the two servers' (command, output) lists into units, in order. `canon` gives
/// an output's order-free form for commands whose answer is a set in ZooKeeper.
fn pair(
    client: Client,
    case: &str,
    reference: Vec<(String, String)>,
    ours: Vec<(String, String)>,
    canon: fn(&str, &str) -> Option<String>,
) -> Vec<Unit> {
    let len = reference.len().max(ours.len());
    let mut reference = reference.into_iter();
    let mut ours = ours.into_iter();
    (0..len)
        .map(|_| {
            let (a, b) = (reference.next(), ours.next());
            let command = a
                .as_ref()
                .or(b.as_ref())
                .map(|(c, _)| c.clone())
                .unwrap_or_default();
            let missing = || "<no answer: the session ended before this>".to_string();
            let reference = a.map(|(_, o)| o).unwrap_or_else(missing);
            let ours = b.map(|(_, o)| o).unwrap_or_else(missing);
            let order_only = reference != ours
                && canon(&command, &reference).is_some_and(|r| canon(&command, &ours) == Some(r));
            let intended = (reference != ours && !order_only)
                .then(|| intended(client, case, &command, &reference, &ours))
                .flatten();
            Unit {
                client,
                case: case.to_string(),
                pass: reference == ours || order_only || intended.is_some(),
                order_only,
                intended,
                command,
                reference,
                ours,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Normalisation

/// `0x…` (or bare hex) that is a session id rather than 0 or a container/TTL marker.
fn is_session_id(hex: &str) -> bool {
    let digits = hex.trim().trim_start_matches("0x");
    match u64::from_str_radix(digits, 16) {
        Ok(0) | Err(_) => false,
        Ok(value) => !matches!(value >> 56, 0x80 | 0xff),
    }
}

/// Replaces what follows `prefix` on a line that starts with it.
fn mask(line: &str, prefix: &str, with: &str) -> Option<String> {
    line.strip_prefix(prefix).map(|_| format!("{prefix}{with}"))
}

// ---------------------------------------------------------------------------------------
// zkCli.sh

/// A scripted zkCli.sh session: one JVM, these commands on stdin, then `quit`.
struct ZkCliCase {
    name: &'static str,
    commands: &'static [&'static str],
}

/// The cases, in order, on both servers; each uses its own paths, but later ones (`ls -R /`,
/// the second sessions) see what earlier ones left. `ikIaKsbtGweaHnb/jKn7OHqbunM=` is
/// base64(sha1("bob:pw")), a digest ACL id given in full.
const ZKCLI_CASES: &[ZkCliCase] = &[
    ZkCliCase {
        name: "create-get-set-stat-ls",
        commands: &[
            "create /zc1 hello",
            "create /zc1/child c",
            "create /zc1 again",
            "create /zc-missing/x y",
            "create /zc1/empty",
            "get /zc1",
            "get -s /zc1",
            "get /zc1/empty",
            "get /zc-missing",
            "stat /zc1",
            "stat /zc-missing",
            "set /zc1 world",
            "set -s /zc1 world2",
            "set -v 99 /zc1 stale",
            "set -v 2 /zc1 world3",
            "set /zc-missing x",
            "get -s /zc1",
            "ls /zc1",
            "ls -s /zc1",
            "ls /zc-missing",
        ],
    },
    ZkCliCase {
        name: "ephemeral-sequential",
        commands: &[
            "create /zc2",
            "create -e /zc2/eph e",
            "create -s /zc2/seq- s",
            "create -s /zc2/seq- s",
            "create -e -s /zc2/eseq- x",
            "create -e /zc2/eph/child x",
            "get -s /zc2/eph",
            "ls -s /zc2",
            "getEphemerals /zc2",
            "getEphemerals",
            "getEphemerals /zc-missing",
        ],
    },
    ZkCliCase {
        name: "ephemerals-gone-after-quit",
        commands: &[
            "ls /zc2",
            "getEphemerals",
            "create -s /zc2/seq- s",
            "ls -s /zc2",
        ],
    },
    ZkCliCase {
        name: "container-ttl",
        commands: &[
            "create -c /zc3 c",
            "create /zc3/kid k",
            "stat /zc3",
            "create -t 60000 /zc3-ttl t",
            "stat /zc3-ttl",
            "create -s -t 60000 /zc3-ttlseq- x",
            "create -t 0 /zc3-ttl0 x",
            "create -e -t 1000 /zc3-bad x",
            "create -c /zc3-container-empty",
            "ls /zc3",
            "get -s /zc3-ttl",
        ],
    },
    ZkCliCase {
        name: "acl",
        commands: &[
            "create /zc4 a",
            "getAcl /zc4",
            "getAcl -s /zc4",
            "setAcl /zc4 world:anyone:ra",
            "getAcl /zc4",
            "set /zc4 denied",
            "create /zc4/kid x",
            "setAcl -s /zc4 world:anyone:cdrwa",
            "setAcl -v 0 /zc4 world:anyone:cdrwa",
            "addauth digest alice:secret",
            "create /zc4/auth x auth::cdrwa",
            "getAcl /zc4/auth",
            "get /zc4/auth",
            "create /zc4/bob x digest:bob:ikIaKsbtGweaHnb/jKn7OHqbunM=:cdrwa",
            "getAcl /zc4/bob",
            "get /zc4/bob",
            "create /zc4/mixed x digest:bob:ikIaKsbtGweaHnb/jKn7OHqbunM=:cdrwa,world:anyone:r",
            "getAcl /zc4/mixed",
            "create /zc4/ip x ip:127.0.0.1:cdrwa",
            "getAcl /zc4/ip",
            "get /zc4/ip",
            "create /zc4/otherip x ip:10.1.2.3:cdrwa",
            "get /zc4/otherip",
            "create /zc4/tree x",
            "create /zc4/tree/a x",
            "setAcl -R /zc4/tree world:anyone:rw",
            "getAcl /zc4/tree/a",
            "create /zc4/badacl x world:anyone:q",
            "whoami",
        ],
    },
    ZkCliCase {
        name: "acl-other-session",
        commands: &[
            "get /zc4/auth",
            "getAcl /zc4/auth",
            "addauth digest alice:wrong",
            "get /zc4/auth",
            "addauth digest alice:secret",
            "get /zc4/auth",
            "whoami",
            "addauth digest bob:pw",
            "get /zc4/bob",
            "getAcl /zc4/bob",
            "getAcl /zc4/mixed",
            "delete /zc4/bob",
        ],
    },
    ZkCliCase {
        name: "delete-deleteall",
        commands: &[
            "create /zc6",
            "create /zc6/a",
            "create /zc6/a/b",
            "create /zc6/c",
            "delete /zc6",
            "delete -v 5 /zc6/c",
            "delete /zc6/c",
            "delete /zc6/c",
            "getAllChildrenNumber /zc6",
            "getAllChildrenNumber /zc-missing",
            "ls -R /zc6",
            "deleteall /zc6",
            "ls /zc6",
            "create /zc7",
            "create /zc7/a",
            "create /zc7/b",
            "create /zc7/c",
            "create /zc7/c/d",
            "deleteall /zc7 -b 2",
            "stat /zc7",
            "deleteall /zc-missing",
        ],
    },
    ZkCliCase {
        name: "tree-sync-whoami",
        commands: &[
            "ls -R /zc1",
            "getAllChildrenNumber /",
            "getAllChildrenNumber /zc1",
            "ls -s /",
            "ls /zookeeper",
            "ls -R /",
            "sync /",
            "sync /zc1",
            "sync /zc-missing",
            "whoami",
            "config",
        ],
    },
    ZkCliCase {
        name: "watches-one-shot",
        commands: &[
            "create /zc9 w",
            "get -w /zc9",
            "set /zc9 s",
            "set /zc9 t",
            "ls -w /zc9",
            "create /zc9/c x",
            "stat -w /zc9-new",
            "create /zc9-new x",
            "get -w /zc9-new",
            "delete /zc9-new",
            "ls -w /zc9",
            "get -w /zc9",
            "removewatches /zc9 -d",
            "removewatches /zc9 -c",
            "set /zc9 u",
            "removewatches /zc9",
            "removewatches /zc-missing",
            "ls -w /zc9",
            "delete /zc9/c",
            "stat /zc9",
        ],
    },
    ZkCliCase {
        name: "quota",
        commands: &[
            "create /zcq x",
            "setquota -n 5 /zcq",
            "listquota /zcq",
            "setquota -b 100 /zcq",
            "create /zcq/a xyz",
            "listquota /zcq",
            "delquota -n /zcq",
            "listquota /zcq",
            "listquota /zc1",
        ],
    },
    ZkCliCase {
        name: "watches-persistent",
        commands: &[
            "create /zc10 w",
            "addWatch -m persistent_recursive /zc10",
            "create /zc10/a x",
            "set /zc10/a y",
            "create /zc10/a/deep z",
            "set /zc10 z",
            "delete /zc10/a/deep",
            "delete /zc10/a",
            "addWatch -m persistent /zc10",
            "create /zc10/b x",
            "set /zc10 q",
            "removewatches /zc10",
            "set /zc10 r",
            "addWatch /zc10-new",
            "create /zc10-new x",
            "delete /zc10-new",
        ],
    },
];

/// Records a zkCli session case from its two transcripts (the reference's, then ours);
/// returns whether the run stops here.
fn record_zkcli_pair(
    report: &mut Report,
    client: Client,
    case: &str,
    mut answers: Vec<Vec<(String, String)>>,
    options: &Options,
) -> bool {
    let ours = answers.pop().unwrap_or_default();
    let reference = answers.pop().unwrap_or_default();
    report.record_case(
        pair(client, case, reference, ours, zkcli_canon),
        options.keep_going,
        options.verbose,
    );
    report.stopped
}

/// One-shot runs: `zkCli.sh -server HOST:PORT <args>`.
const ZKCLI_ONE_SHOT: &[&[&str]] = &[
    &["create", "/zc-oneshot", "one"],
    &["get", "-s", "/zc-oneshot"],
    &["set", "/zc-oneshot", "two"],
    &["ls", "-s", "/zc-oneshot"],
    &["getAllChildrenNumber", "/zc-oneshot"],
    &["delete", "/zc-oneshot"],
    &["stat", "/zc-oneshot"],
];

/// What `printwatches` (without an argument) prints: the end-of-command marker.
const SENTINEL: &[u8] = b"printwatches is on\n";

fn zkcli_command(addr: SocketAddr) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(ZKCLI)
        .arg("-server")
        .arg(addr.to_string())
        .env("TZ", "UTC")
        .env(
            "CLIENT_JVMFLAGS",
            "-Duser.timezone=UTC -Duser.language=en -Duser.country=US -Dfile.encoding=UTF-8 \
             -Xmx128m",
        );
    cmd
}

/// Runs `case` against `addr`; returns (command, raw output) per command, with
/// `(connect)` first and `quit` last.
fn zkcli_session(shell: Command, case: &ZkCliCase, out: &Path) -> Result<Vec<(String, String)>> {
    let mut session = Interactive::spawn(shell, out)?;
    let mut segments = Vec::new();
    let connected = session.wait_until(Duration::from_secs(30), |b| {
        find(b, b"state:SyncConnected").is_some()
    });
    let mut pos = session.bytes().len();
    let mut greeting = lossy(&session.bytes());
    if !connected {
        greeting.push_str("<no SyncConnected within 30s>");
        segments.push(("(connect)".to_string(), greeting));
        return Ok(segments);
    }
    segments.push(("(connect)".to_string(), greeting));
    for command in case.commands {
        session.send(command)?;
        session.send("printwatches")?;
        let done = session.wait_until(Duration::from_secs(20), |b| {
            find(&b[pos.min(b.len())..], SENTINEL).is_some()
        });
        let bytes = session.bytes();
        let tail = &bytes[pos.min(bytes.len())..];
        match find(tail, SENTINEL) {
            Some(end) if done => {
                segments.push((command.to_string(), lossy(&tail[..end])));
                pos += end + SENTINEL.len();
            }
            _ => {
                segments.push((
                    command.to_string(),
                    format!("{}<no answer within 20s>", lossy(tail)),
                ));
                return Ok(segments);
            }
        }
    }
    session.send("quit")?;
    let bytes = session.finish(Duration::from_secs(20));
    segments.push(("quit".into(), lossy(&bytes[pos.min(bytes.len())..])));
    Ok(segments)
}

/// Normalises zkCli.sh output: SLF4J's notes dropped, times, zxids and session ids
/// masked, server addresses replaced.
fn normalise_zkcli(servers: &Servers<'_>, text: &str) -> Vec<String> {
    servers
        .unaddress(text)
        .lines()
        .filter(|l| !l.starts_with("SLF4J:"))
        .map(|line| {
            for prefix in ["ctime = ", "mtime = "] {
                if let Some(masked) = mask(line, prefix, "<time>") {
                    return masked;
                }
            }
            for prefix in ["cZxid = ", "mZxid = ", "pZxid = "] {
                if let Some(masked) = mask(line, prefix, "<zxid>") {
                    return masked;
                }
            }
            if let Some(owner) = line.strip_prefix("ephemeralOwner = ")
                && is_session_id(owner)
            {
                return "ephemeralOwner = <session>".into();
            }
            line.to_string()
        })
        .collect()
}

/// zkCli answers that list a set: `getEphemerals` (a `HashSet` copy in ZooKeeper's
/// DataTree) and `whoami` (the connection's auth ids, a set over a `ConcurrentHashMap`).
/// Their order is ZooKeeper's hash order, which no client may rely on.
fn zkcli_canon(command: &str, text: &str) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    if command.starts_with("getEphemerals") {
        for line in &mut lines {
            if let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let mut items: Vec<&str> = inner.split(", ").collect();
                items.sort_unstable();
                *line = format!("[{}]", items.join(", "));
            }
        }
        return Some(lines.join("\n"));
    }
    if command == "whoami" {
        lines.sort();
        return Some(lines.join("\n"));
    }
    None
}

/// Splits zkCli's watch notifications out of a command's output; returns (other lines,
/// events). The event thread prints `"\nWATCHER::"` and then `"\nWatchedEvent ..."`, each
/// with one `println`, so each is a blank line and its text, but the main thread's output
/// can come between the two.
fn split_events(lines: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut drop = vec![false; lines.len()];
    let mut events = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let event = line.starts_with("WatchedEvent ");
        if line == "WATCHER::" || event {
            drop[i] = true;
            if i > 0 && lines[i - 1].is_empty() {
                drop[i - 1] = true;
            }
        }
        if event {
            events.push(line.clone());
        }
    }
    let rest = lines
        .into_iter()
        .zip(drop)
        .filter(|(_, d)| !d)
        .map(|(l, _)| l)
        .collect();
    (rest, events)
}

/// The client's own notice that `quit` closed it: printed by the event thread while the
/// JVM exits, so sometimes cut short; it says nothing about the server.
const CLOSED_EVENT: &str = "WatchedEvent state:Closed type:None path:null";

/// A zkCli session's compared answers: each command's output without watch events, then
/// all the session's events (but [`CLOSED_EVENT`]) as one answer.
fn zkcli_answers(servers: &Servers<'_>, segments: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut events = Vec::new();
    let mut answers: Vec<(String, String)> = segments
        .into_iter()
        .map(|(command, raw)| {
            let (lines, mut seen) = split_events(normalise_zkcli(servers, &raw));
            seen.retain(|e| e != CLOSED_EVENT);
            events.append(&mut seen);
            let mut lines = lines;
            if command == "quit" {
                // What is left of a cut-short CLOSED_EVENT.
                while lines
                    .last()
                    .is_some_and(|l| l.is_empty() || l == "WATCHER::")
                {
                    lines.pop();
                }
            }
            (command, lines.join("\n"))
        })
        .collect();
    answers.push((EVENTS_COMMAND.into(), events.join("\n")));
    answers
}

fn zkcli(servers: &Servers<'_>, report: &mut Report) -> Result<()> {
    let options = servers.options;
    for (i, case) in ZKCLI_CASES.iter().enumerate() {
        let mut answers = Vec::new();
        for (tag, server) in [("zk", servers.reference), ("ours", servers.ours)] {
            let out = servers.dir.join(format!("zkcli-{i}-{tag}.out"));
            answers.push(zkcli_answers(
                servers,
                zkcli_session(zkcli_command(server.addr), case, &out)?,
            ));
        }
        if record_zkcli_pair(report, Client::ZkCli, case.name, answers, options) {
            return Ok(());
        }
    }
    let mut units = Vec::new();
    for args in ZKCLI_ONE_SHOT {
        let mut outputs = Vec::new();
        for server in [servers.reference, servers.ours] {
            let out = servers.dir.join("zkcli-oneshot.out");
            let mut cmd = zkcli_command(server.addr);
            cmd.args(*args).stdin(Stdio::null());
            let session = Interactive::spawn(cmd, &out)?;
            let raw = lossy(&session.finish(Duration::from_secs(30)));
            let (lines, events) = split_events(normalise_zkcli(servers, &raw));
            // The connection event is printed by the event thread, racing the answer.
            outputs.push(format!(
                "{}\n[events] {}",
                lines.join("\n"),
                events.join(" | ")
            ));
        }
        let ours = outputs.pop().unwrap_or_default();
        let reference = outputs.pop().unwrap_or_default();
        units.push(Unit {
            client: Client::ZkCli,
            case: "one-shot".into(),
            command: format!("zkCli.sh -server <server> {}", args.join(" ")),
            pass: reference == ours,
            order_only: false,
            intended: None,
            reference,
            ours,
        });
    }
    report.record_case(units, options.keep_going, options.verbose);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// zk-cli

/// The zkCli.sh cases again: zkCli.sh and zk-cli each against a fresh Apache ZooKeeper;
/// every answer must be the same. The quota commands are zkCli's alone.
fn zk_cli(servers: &Servers<'_>, report: &mut Report) -> Result<()> {
    let options = servers.options;
    let binary = target_dir().join("debug/zk-cli");
    let dir = servers.dir.join("zk-cli");
    let for_zkcli = ServerProc::start_zookeeper(&dir.join("for-zkcli"))?;
    let for_ours = ServerProc::start_zookeeper(&dir.join("for-zk-cli"))?;
    let pair_servers = Servers {
        reference: &for_zkcli,
        ours: &for_ours,
        dir: dir.clone(),
        options,
    };
    let mut transcripts = Vec::new();
    for (i, case) in ZKCLI_CASES.iter().enumerate() {
        if case.name == "quota" {
            continue;
        }
        let mut ours_cmd = Command::new(&binary);
        ours_cmd
            .args(["-server", &for_ours.addr.to_string()])
            .env("TZ", "UTC");
        let sessions = [
            (zkcli_command(for_zkcli.addr), "zkcli"),
            (ours_cmd, "zk-cli"),
        ];
        let mut answers = Vec::new();
        for (shell, tag) in sessions {
            let out = dir.join(format!("{i}-{tag}.out"));
            let mut segments = zkcli_session(shell, case, &out)?;
            // The greetings differ (zk-cli has no JLine); what follows must not.
            if let Some((_, greeting)) = segments.first_mut() {
                greeting.retain(|_| false);
            }
            answers.push(zkcli_answers(&pair_servers, segments));
        }
        transcripts.push((i, case, answers.first().cloned().unwrap_or_default()));
        if record_zkcli_pair(report, Client::ZkRsCli, case.name, answers, options) {
            return Ok(());
        }
    }
    // One-shot runs: zk-cli prints only the answer (no banner, no connection event), so
    // zkCli.sh's banner and events are left out; the exit codes are compared too.
    let mut units = Vec::new();
    for args in ZKCLI_ONE_SHOT {
        let mut outputs = Vec::new();
        for (mut cmd, tag) in [
            (zkcli_command(for_zkcli.addr), "zkcli"),
            (Command::new(&binary), "zk-cli"),
        ] {
            if tag == "zk-cli" {
                cmd.args(["-server", &for_ours.addr.to_string()])
                    .env("TZ", "UTC");
            }
            cmd.args(*args).stdin(Stdio::null());
            let out = dir.join(format!("oneshot-{tag}.out"));
            let mut session = Interactive::spawn(cmd, &out)?;
            let deadline = Instant::now() + Duration::from_secs(30);
            let status = loop {
                if let Some(status) = session.child.try_wait()? {
                    break status.code();
                }
                if Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let raw = lossy(&session.finish(Duration::from_secs(5)));
            let (lines, _) = split_events(normalise_zkcli(&pair_servers, &raw));
            let lines: Vec<String> = lines
                .into_iter()
                .filter(|l| !l.starts_with("Connecting to ") && !l.is_empty())
                .collect();
            outputs.push(format!("{}\n[exit code] {status:?}", lines.join("\n")));
        }
        let ours = outputs.pop().unwrap_or_default();
        let reference = outputs.pop().unwrap_or_default();
        units.push(Unit {
            client: Client::ZkRsCli,
            case: "one-shot".into(),
            command: args.join(" "),
            pass: reference == ours,
            order_only: false,
            intended: None,
            reference,
            ours,
        });
    }
    report.record_case(units, options.keep_going, options.verbose);
    if options.record_cli {
        let folder = root().join(CLI_TRANSCRIPTS);
        std::fs::create_dir_all(&folder)?;
        for (i, case, answers) in transcripts {
            let mut text = String::new();
            for (command, answer) in answers {
                let _ = writeln!(text, "### {command}");
                if !answer.is_empty() {
                    let _ = writeln!(text, "{answer}");
                }
            }
            let file = folder.join(format!("{i:02}-{}.txt", case.name));
            std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
        }
        eprintln!("recorded zkCli.sh's answers in {CLI_TRANSCRIPTS}/");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// cli_mt

struct CliMtCase {
    name: &'static str,
    commands: &'static [&'static str],
}

/// `create` takes the whole rest of the line as the path and always writes "new";
/// `exists` and `addauth` print nothing unless they fail (cli_mt's threaded build).
const CLI_MT_CASES: &[CliMtCase] = &[
    CliMtCase {
        name: "create-get-set-ls-delete",
        commands: &[
            "create /zm",
            "create /zm/kid",
            "create /zm",
            "create +e /zm/eph",
            "create +s /zm/seq-",
            "create +es /zm/eseq-",
            "create2 /zm/two",
            "create /zm-missing/x",
            "get /zm",
            "set /zm hello",
            "get /zm",
            "set /zm-missing x",
            "ls /zm",
            "ls2 /zm",
            "exists /zm",
            "exists /zm-missing",
            "sync /zm",
            "wexists /zm/two",
            "delete /zm/two",
            "delete /zm/kid",
            "delete /zm",
            "delete /zm-missing",
            "get /zm-missing",
            "ls /zm-missing",
            "addauth digest u:p",
            "create +c /zm-container",
            "create /zm-container/kid",
            "ls2 /zm-container",
            "create +t=60000 /zm-ttl",
            "get /zm-ttl",
        ],
    },
    CliMtCase {
        name: "after-reconnect",
        commands: &["ls /zm", "get /zm", "delete /zm/kid", "ls2 /"],
    },
];

/// Runs `case` through cli_mt against `addr`, one line at a time.
fn cli_mt_session(addr: SocketAddr, case: &CliMtCase, out: &Path) -> Result<Vec<(String, String)>> {
    let mut cmd = Command::new(CLI_MT);
    cmd.arg(addr.to_string()).env("TZ", "UTC");
    let mut session = Interactive::spawn(cmd, out)?;
    let connected = session.wait_until(Duration::from_secs(20), |b| {
        find(b, b"Got a new session id").is_some()
    });
    // Let the rest of the connection's lines land.
    std::thread::sleep(Duration::from_millis(200));
    let mut pos = session.bytes().len();
    let mut greeting = lossy(&session.bytes());
    if !connected {
        greeting.push_str("<no session within 20s>");
        return Ok(vec![("(connect)".to_string(), greeting)]);
    }
    let mut segments = vec![("(connect)".to_string(), greeting)];
    for command in case.commands {
        session.send(command)?;
        let started = Instant::now();
        let (mut len, mut changed) = (pos, Instant::now());
        loop {
            std::thread::sleep(Duration::from_millis(10));
            let bytes = session.bytes();
            if bytes.len() != len {
                len = bytes.len();
                changed = Instant::now();
            }
            let answered = find(&bytes[pos.min(len)..], b"rc = ").is_some()
                || find(&bytes[pos.min(len)..], b"Error ").is_some();
            let quiet = changed.elapsed() >= Duration::from_millis(300);
            let waited = started.elapsed();
            if (quiet && (answered || waited >= Duration::from_millis(1500)))
                || waited >= Duration::from_secs(10)
            {
                break;
            }
        }
        let bytes = session.bytes();
        segments.push((command.to_string(), lossy(&bytes[pos.min(bytes.len())..])));
        pos = bytes.len();
    }
    session.send("quit")?;
    let bytes = session.finish(Duration::from_secs(15));
    segments.push(("quit".into(), lossy(&bytes[pos.min(bytes.len())..])));
    Ok(segments)
}

/// Normalises cli_mt output: timings, times (ctime_r text), zxids and session ids masked,
/// the C client's log prefixes (time, pid, thread) cut, server addresses replaced.
fn normalise_cli_mt(servers: &Servers<'_>, text: &str) -> String {
    servers
        .unaddress(text)
        .lines()
        .map(|line| {
            if line.starts_with("time = ") && line.ends_with(" msec") {
                return "time = <ms> msec".into();
            }
            if let Some(masked) = mask(line, "Got a new session id: ", "<session>") {
                return masked;
            }
            if let Some(masked) = mask(line, "session Id = ", "<session>") {
                return masked;
            }
            for (prefix, with) in [
                ("\tctime = ", "<time>"),
                ("\tmtime=", "<time>"),
                ("\tczxid=", "<zxid>"),
                ("\tmzxid=", "<zxid>"),
            ] {
                if let Some(masked) = mask(line, prefix, with) {
                    return masked;
                }
            }
            if let Some(owner) = line.strip_prefix("\tephemeralOwner = ")
                && is_session_id(owner)
            {
                return "\tephemeralOwner = <session>".into();
            }
            if let Some(at) = line.find("ZOO_") {
                return line[at..].to_string();
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// cli_mt's `ls` and `ls2` print children in the server's order, which in ZooKeeper is a
/// `HashSet`'s: the names between `rc = 0` and `time = ` compare as a set.
fn cli_mt_canon(command: &str, text: &str) -> Option<String> {
    if !(command.starts_with("ls ") || command.starts_with("ls2 ")) {
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    let mut block: Option<Vec<String>> = None;
    for line in text.lines() {
        match &mut block {
            Some(names) if line.starts_with('\t') => names.push(line.to_string()),
            Some(names) => {
                names.sort();
                out.append(names);
                block = None;
                out.push(line.to_string());
            }
            None => {
                out.push(line.to_string());
                if line.ends_with(": rc = 0") {
                    block = Some(Vec::new());
                }
            }
        }
    }
    if let Some(mut names) = block {
        names.sort();
        out.append(&mut names);
    }
    Some(out.join("\n"))
}

fn cli_mt(servers: &Servers<'_>, report: &mut Report) -> Result<()> {
    let options = servers.options;
    for (i, case) in CLI_MT_CASES.iter().enumerate() {
        let mut answers = Vec::new();
        for (tag, server) in [("zk", servers.reference), ("ours", servers.ours)] {
            let out = servers.dir.join(format!("cli_mt-{i}-{tag}.out"));
            let segments = cli_mt_session(server.addr, case, &out)?;
            answers.push(
                segments
                    .into_iter()
                    .map(|(c, raw)| (c, normalise_cli_mt(servers, &raw)))
                    .collect::<Vec<_>>(),
            );
        }
        let ours = answers.pop().unwrap_or_default();
        let reference = answers.pop().unwrap_or_default();
        report.record_case(
            pair(Client::CliMt, case.name, reference, ours, cli_mt_canon),
            options.keep_going,
            options.verbose,
        );
        if report.stopped {
            return Ok(());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// kazoo

/// Runs the kazoo script against `addr`; returns its lines keyed by check name, plus an
/// `(exit)` line with its status and any stderr.
fn kazoo_run(python: &Path, addr: SocketAddr, out: &Path) -> Result<Vec<(String, String)>> {
    let script = root().join(KAZOO_SCRIPT);
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg(addr.to_string())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    let session = Interactive::spawn(cmd, out)?;
    let text = lossy(&session.finish(Duration::from_secs(120)));
    let mut checks = Vec::new();
    let mut other = Vec::new();
    for line in text.lines() {
        let (status, rest) = match line.split_once(' ') {
            Some((s @ ("ok" | "FAIL"), rest)) => (s, rest),
            _ => {
                other.push(line);
                continue;
            }
        };
        let name = rest.split_once(": ").map_or(rest, |(n, _)| n);
        checks.push((name.to_string(), format!("{status} {rest}")));
    }
    let passed = text.lines().any(|l| l == "kazoo_check: all checks passed");
    let mut exit = if passed {
        "all checks passed".to_string()
    } else {
        "some checks failed or the script did not finish".to_string()
    };
    for note in other
        .iter()
        .filter(|l| l.starts_with("kazoo_check: this kazoo"))
    {
        eprintln!("  note ({addr}): {note}");
    }
    let noise: Vec<&str> = other
        .into_iter()
        .filter(|l| !l.starts_with("kazoo_check:"))
        .collect();
    if !noise.is_empty() {
        exit.push('\n');
        exit.push_str(&noise.join("\n"));
    }
    checks.push(("(script result)".into(), exit));
    Ok(checks)
}

fn kazoo(servers: &Servers<'_>, python: &Path, report: &mut Report) -> Result<()> {
    let reference = kazoo_run(
        python,
        servers.reference.addr,
        &servers.dir.join("kazoo-zk.out"),
    )?;
    let ours = kazoo_run(
        python,
        servers.ours.addr,
        &servers.dir.join("kazoo-ours.out"),
    )?;
    // Pair by check name, in the reference's order, then any only ours printed.
    let mut names: Vec<String> = reference.iter().map(|(n, _)| n.clone()).collect();
    for (name, _) in &ours {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let lookup = |list: &[(String, String)], name: &str| {
        list.iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| servers.unaddress(l))
            .unwrap_or_else(|| "<not printed: the script stopped before this check>".into())
    };
    let units = names
        .iter()
        .map(|name| {
            let (a, b) = (lookup(&reference, name), lookup(&ours, name));
            Unit {
                client: Client::Kazoo,
                case: "kazoo_check.py".into(),
                command: name.clone(),
                // A check must also pass on its own terms (and against ZooKeeper too,
                // or the script's expectation is wrong).
                pass: a == b && !b.starts_with("FAIL") && !b.starts_with("some checks"),
                order_only: false,
                intended: None,
                reference: a,
                ours: b,
            }
        })
        .collect();
    report.record_case(units, servers.options.keep_going, servers.options.verbose);
    Ok(())
}
