//! The `zookeeper-client` crate's own integration suite (`tests/zookeeper.rs`), unmodified,
//! against Apache ZooKeeper 3.8.0 and against our server.
//!
//! The suite starts a ZooKeeper docker container per test through testcontainers' CLI
//! client. Here there is no docker: `docker_shim` is a `docker` command that runs the
//! server as a local process, and it goes first on the suite's `PATH`.
//!
//! - The crate's source comes from the cargo registry (the version this workspace resolves,
//!   found with `cargo metadata`) and is copied to `target/zookeeper-client-suite/`; nothing
//!   of it is kept in the repository. Only its `Cargo.toml` is changed: it becomes a
//!   workspace of its own, and its testcontainers dev-dependency, a git fork that cargo drops
//!   on publishing, is supplied by `xtask/testcontainers/lib.rs` (the same API and docker
//!   commands). Its other dev-dependencies come from crates.io, pinned by its `Cargo.lock`.
//!   Built with its `tls` and `sasl-digest-md5` features (not `sasl`, whose GSSAPI half
//!   needs Kerberos to build)
//!   and with thin LTO off (the crate's dev profile asks for it, for macOS linking of its
//!   SASL code; it only slows the build here). With `tls` the suite picks plaintext or TLS,
//!   and hostname verification, at random for each cluster unless told: here every case
//!   runs in plaintext but the TLS ones, whose servers' certificates name 127.0.0.1 and
//!   are verified.
//! - Each test runs as its own process (`--exact`), several at a time, with a time limit;
//!   each has its own shim state folder, so what a test leaves running is stopped after it.
//!   A case left out would be named in [`EXCLUDED`] (none is: the reconfiguration case,
//!   `test_update_ensemble`, runs since zk-server reconfigures); a case the features
//!   leave unbuilt would be listed in [`NOT_BUILT`]. `--test NAME` runs only the cases
//!   named. A case that runs an ensemble on the host's network, on
//!   fixed ports, runs alone ([`HOST_NETWORK`]). Whatever tag a test asks for (3.9.0, or 3.3 and 3.4 for
//!   `test_zookeeper_old_server`), the shim runs the server under test.
//! - A test failing on our server fails the run unless [`INTENDED_DIFFERENCES`] lists it.
//!   Failures on Apache ZooKeeper are reported (the suite targets ZooKeeper 3.9) but do not
//!   fail the run by themselves.

use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Client, Report, Servers, Unit, target_dir};
use crate::docker_shim;
use crate::servers::{stop_group, wait_for_exit};
use crate::{cargo, root};

/// The scratch folder under the cargo target directory.
const SUITE_DIR: &str = "zookeeper-client-suite";
/// The suite's integration test target.
const TEST_TARGET: &str = "zookeeper";
/// A test still running after this is stopped and counted as failed (the slowest that
/// pass take about 16 s against Apache ZooKeeper).
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Tests run at a time, both servers' together. Most of a test's time is spent waiting
/// (session timeouts, TTLs, server start-up), so more than the 2 cores of the development
/// VM.
const JOBS: usize = 6;
/// The servers, as `ZK_DOCKER_SHIM_SERVER` names them, with their labels.
const SERVERS: [(&str, &str); 2] = [
    ("zookeeper", "Apache ZooKeeper 3.8.0"),
    ("ours", "zk-server"),
];
/// Each test's duration on each server in the last run (`server test millis` lines), to
/// start the slowest first next time.
const TIMINGS: &str = "timings.txt";
/// The stand-in for the suite's testcontainers fork.
const TESTCONTAINERS_LIB: &str = include_str!("../../testcontainers/lib.rs");
/// Its manifest (crates.io dependencies only, both already in the suite's lock file).
const TESTCONTAINERS_MANIFEST: &str = "\
[package]
name = \"testcontainers\"
version = \"0.12.0\"
edition = \"2021\"
publish = false
description = \"Stand-in for zookeeper-client's testcontainers fork (written by xtask)\"

[dependencies]
log = \"0.4\"
serde_json = \"1\"
";

/// Tests left out, with why (none now).
const EXCLUDED: &[(&str, &str)] = &[];

/// Tests whose ensemble runs on the host's network with fixed ports (2001-2003,
/// 3001-3003, 4001-4003): one at a time, whichever server.
const HOST_NETWORK: &[&str] = &[
    "test_readonly_plaintext",
    "test_readonly_tls",
    "test_update_ensemble",
];

/// Tests the suite compiles only with crate features this run leaves off.
const NOT_BUILT: &[(&str, &str)] = &[];

/// Tests allowed to fail on our server, each with why. Add one only for a deliberate
/// difference, or for 3.9-only behaviour that Apache ZooKeeper 3.8.0 fails too.
const INTENDED_DIFFERENCES: &[(&str, &str)] = &[
    // Written against ZooKeeper 3.3 and 3.4 images, whose notifications carry zxid -1;
    // the shim runs the server under test instead. Ours sends the triggering txn's zxid,
    // as ZooKeeper 3.9 does (ZOOKEEPER-4655; see server/src/wire.rs), so the test's
    // `event.zxid == -1` does not hold. Apache ZooKeeper 3.8.0 sends -1 and passes.
    (
        "test_zookeeper_old_server::case_1_version_3_3",
        "ZOOKEEPER-4655: notifications carry their txn's zxid, as in 3.9",
    ),
    (
        "test_zookeeper_old_server::case_2_version_3_4",
        "ZOOKEEPER-4655: notifications carry their txn's zxid, as in 3.9",
    ),
];

/// One test's result on one server.
#[derive(Clone)]
struct Outcome {
    passed: bool,
    /// The failure: panic message(s), or why the test did not finish.
    message: String,
    took: Duration,
    /// Where the test's output and its servers' logs were kept (failures only).
    kept: Option<PathBuf>,
}

impl Outcome {
    fn short(&self) -> String {
        let secs = self.took.as_secs_f64();
        if self.passed {
            format!("ok {secs:.1}s")
        } else {
            format!("FAIL {secs:.1}s")
        }
    }

    fn text(&self) -> String {
        if self.passed {
            return "ok".into();
        }
        let mut text = format!("FAILED: {}", self.message);
        if let Some(kept) = &self.kept {
            let _ = write!(text, "\n(output and server logs: {})", kept.display());
        }
        text
    }
}

/// The built suite.
struct Suite {
    crate_dir: PathBuf,
    exe: PathBuf,
    version: String,
}

/// Runs the suite against both servers and records one unit per test.
pub(super) fn run(servers: &Servers<'_>, report: &mut Report) -> Result<()> {
    let started = Instant::now();
    let suite = prepare()?;
    let built = started.elapsed();
    let listed = list_tests(&suite)?;
    eprintln!(
        "  zookeeper-client {} tests/{TEST_TARGET}.rs: {} tests (built in {:.0}s)",
        suite.version,
        listed.len(),
        built.as_secs_f64()
    );
    for (name, why) in EXCLUDED {
        eprintln!("  left out {name}: {why}");
        if !listed.iter().any(|t| t == name) {
            eprintln!("    (the suite no longer has it)");
        }
    }
    for (name, why) in NOT_BUILT {
        eprintln!("  left out {name}: {why}");
    }
    let chosen = &servers.options.tests;
    let tests: Vec<String> = listed
        .into_iter()
        .filter(|t| !EXCLUDED.iter().any(|(name, _)| name == t))
        .filter(|t| chosen.is_empty() || chosen.contains(t))
        .collect();

    let binary = servers
        .options
        .zk_server
        .clone()
        .unwrap_or_else(|| target_dir().join("debug/zk-server"));
    let base = target_dir().join(SUITE_DIR);
    let runs = base.join("runs");
    crate::remove_path(&runs)?;
    let clock = Instant::now();
    eprintln!(
        "  -- {} tests against each server, {JOBS} at a time, the slowest last time first",
        tests.len()
    );
    let mut results = run_all(
        &suite,
        &tests,
        &binary,
        &runs,
        servers.options.verbose,
        &base.join(TIMINGS),
    )?;
    for (server, outcomes) in SERVERS.iter().zip(&results) {
        let passed = outcomes.iter().filter(|o| o.passed).count();
        eprintln!(
            "  {}: {passed} passed, {} failed",
            server.1,
            outcomes.len() - passed
        );
    }
    eprintln!("  ran in {:.0}s", clock.elapsed().as_secs_f64());
    let ours = results.pop().unwrap_or_default();
    let reference = results.pop().unwrap_or_default();
    print_results(&tests, &reference, &ours);

    let units = tests
        .iter()
        .zip(reference.iter().zip(&ours))
        .map(|(name, (zk, us))| {
            let intended = INTENDED_DIFFERENCES.iter().any(|(n, _)| n == name);
            Unit {
                client: Client::ZookeeperCrate,
                case: format!("tests/{TEST_TARGET}.rs"),
                command: name.clone(),
                reference: zk.text(),
                ours: us.text(),
                pass: us.passed || intended,
                order_only: false,
                intended: None,
            }
        })
        .collect();
    report.record_case(units, servers.options.keep_going, servers.options.verbose);
    eprintln!(
        "  zookeeper-client suite took {:.0}s in all",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Preparing the suite

/// The directory of the `zookeeper-client` package this workspace resolves, and its
/// version.
fn locate_crate() -> Result<(PathBuf, String)> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed with {}", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let key = "\"manifest_path\":\"";
    let mut found = Vec::new();
    for (at, _) in text.match_indices(key) {
        let rest = &text[at + key.len()..];
        let Some(end) = rest.find('"') else { continue };
        let manifest = Path::new(&rest[..end]);
        let Some(dir) = manifest.parent() else {
            continue;
        };
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        if let Some(version) = name.strip_prefix("zookeeper-client-")
            && version.starts_with(|c: char| c.is_ascii_digit())
            && !found.iter().any(|(d, _): &(PathBuf, String)| d == dir)
        {
            found.push((dir.to_path_buf(), version.to_string()));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("cargo metadata lists no zookeeper-client package in the registry"),
        _ => bail!("several zookeeper-client packages: {found:?}"),
    }
}

/// Writes `text` to `path` unless it already holds it (keeps mtimes, so cargo does not
/// rebuild what did not change).
fn write_if_changed(path: &Path, text: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Copies the files of `from` into `to`, writing only those that differ.
fn sync_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if entry.file_name() != "target" {
                sync_tree(&source, &dest)?;
            }
        } else if kind.is_file() {
            // Cargo adds the stand-in to the lock file; start from the crate's own once.
            if entry.file_name() == "Cargo.lock" && dest.exists() {
                continue;
            }
            write_if_changed(&dest, &std::fs::read(&source)?)?;
        }
    }
    Ok(())
}

/// Copies the crate, adds the stand-in testcontainers, links the docker shim and builds the
/// test binary.
fn prepare() -> Result<Suite> {
    let (source, version) = locate_crate()?;
    let base = target_dir().join(SUITE_DIR);
    let crate_dir = base.join(source.file_name().context("crate folder")?);
    sync_tree(&source, &crate_dir)?;
    let mut manifest = std::fs::read_to_string(source.join("Cargo.toml"))?;
    manifest.push_str(
        "\n# Added by cargo xtask compat-clients: the suite's testcontainers (a git fork that\n\
         # cargo drops on publishing) is a stand-in, and this copy is a workspace of its own.\n\
         [dev-dependencies.testcontainers]\npath = \"../testcontainers\"\n\n[workspace]\n",
    );
    write_if_changed(&crate_dir.join("Cargo.toml"), manifest.as_bytes())?;
    let stand_in = base.join("testcontainers");
    write_if_changed(
        &stand_in.join("Cargo.toml"),
        TESTCONTAINERS_MANIFEST.as_bytes(),
    )?;
    write_if_changed(&stand_in.join("src/lib.rs"), TESTCONTAINERS_LIB.as_bytes())?;

    let bin = base.join("bin");
    std::fs::create_dir_all(&bin)?;
    let docker = bin.join("docker");
    let _ = std::fs::remove_file(&docker);
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    std::os::unix::fs::symlink(&exe, &docker)
        .with_context(|| format!("linking {}", docker.display()))?;

    let mut build = cargo();
    build
        .args([
            "test",
            "--test",
            TEST_TARGET,
            "--no-run",
            "--features",
            "tls,sasl-digest-md5",
        ])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(crate_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", base.join("target"))
        .env("CARGO_PROFILE_DEV_LTO", "false")
        .stderr(Stdio::inherit());
    eprintln!("$ {build:?}");
    let output = build.output().context("building the suite")?;
    if !output.status.success() {
        bail!(
            "building zookeeper-client's tests failed with {}",
            output.status
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let key = "\"executable\":\"";
    let exe = text
        .lines()
        .filter_map(|line| {
            let at = line.find(key)? + key.len();
            let path = &line[at..at + line[at..].find('"')?];
            let name = Path::new(path).file_name()?.to_string_lossy();
            name.starts_with(&format!("{TEST_TARGET}-"))
                .then(|| PathBuf::from(path))
        })
        .next_back()
        .context("cargo built no test executable for tests/zookeeper.rs")?;
    Ok(Suite {
        crate_dir,
        exe,
        version,
    })
}

fn list_tests(suite: &Suite) -> Result<Vec<String>> {
    let output = Command::new(&suite.exe)
        .args(["--list", "--format", "terse"])
        .current_dir(&suite.crate_dir)
        .output()
        .with_context(|| format!("listing the tests of {}", suite.exe.display()))?;
    if !output.status.success() {
        bail!(
            "{} --list failed with {}",
            suite.exe.display(),
            output.status
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(String::from)
        .collect())
}

// ---------------------------------------------------------------------------------------
// Running it

/// Runs every test against both servers, `JOBS` at a time, the slowest in the last run
/// (`timings`, rewritten) first; returns the outcomes per server in [`SERVERS`]' order, each
/// in the order of `tests`.
fn run_all(
    suite: &Suite,
    tests: &[String],
    binary: &Path,
    runs: &Path,
    verbose: bool,
    timings: &Path,
) -> Result<Vec<Vec<Outcome>>> {
    let last = std::fs::read_to_string(timings).unwrap_or_default();
    let last_ms = |server: &str, test: &str| -> u64 {
        last.lines()
            .find_map(|line| {
                let mut fields = line.split(' ');
                let matches = fields.next() == Some(server) && fields.next() == Some(test);
                matches.then(|| fields.next()?.parse().ok()).flatten()
            })
            .unwrap_or(0)
    };
    let mut jobs: Vec<(usize, usize)> = (0..tests.len())
        .flat_map(|t| (0..SERVERS.len()).map(move |s| (s, t)))
        .collect();
    jobs.sort_by_key(|&(s, t)| std::cmp::Reverse(last_ms(SERVERS[s].0, &tests[t])));

    let next = AtomicUsize::new(0);
    let host_network = Mutex::new(());
    let outcomes: Mutex<Vec<Vec<Option<Outcome>>>> =
        Mutex::new(vec![vec![None; tests.len()]; SERVERS.len()]);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..JOBS.min(jobs.len()) {
            scope.spawn(|| {
                while let Some(&(s, t)) = jobs.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let (server, label) = SERVERS[s];
                    let name = &tests[t];
                    let alone = HOST_NETWORK
                        .contains(&name.as_str())
                        .then(|| host_network.lock().unwrap_or_else(|e| e.into_inner()));
                    let result = run_one(suite, name, server, binary, &runs.join(server));
                    drop(alone);
                    match result {
                        Ok(outcome) => {
                            // The panic's own line when the assertion names it.
                            let lines = || outcome.message.lines();
                            let first = lines()
                                .find(|l| l.contains("tests/"))
                                .or_else(|| lines().next())
                                .unwrap_or("");
                            if !outcome.passed {
                                eprintln!("    {} {name} on {label}: {first}", outcome.short());
                            } else if verbose {
                                eprintln!("    {} {name} on {label}", outcome.short());
                            }
                            outcomes.lock().unwrap()[s][t] = Some(outcome);
                        }
                        Err(e) => {
                            failure.lock().unwrap().get_or_insert(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    let outcomes = outcomes
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|per_server| per_server.into_iter().collect::<Option<Vec<_>>>())
        .collect::<Option<Vec<_>>>()
        .context("a test was not run")?;
    let mut text = String::new();
    for ((server, _), per_server) in SERVERS.iter().zip(&outcomes) {
        for (test, outcome) in tests.iter().zip(per_server) {
            let _ = writeln!(text, "{server} {test} {}", outcome.took.as_millis());
        }
    }
    std::fs::write(timings, text).with_context(|| format!("writing {}", timings.display()))?;
    Ok(outcomes)
}

/// Runs one test in its own process with its own shim state.
fn run_one(suite: &Suite, name: &str, server: &str, binary: &Path, dir: &Path) -> Result<Outcome> {
    let state = dir.join(name.replace("::", "__"));
    std::fs::create_dir_all(&state)?;
    let out_path = state.join("output.txt");
    let out = File::create(&out_path)?;
    let bin = target_dir().join(SUITE_DIR).join("bin");
    let path = match std::env::var_os("PATH") {
        Some(path) => {
            let mut dirs = vec![bin];
            dirs.extend(std::env::split_paths(&path));
            std::env::join_paths(dirs)?
        }
        None => bin.into_os_string(),
    };
    let mut cmd = Command::new(&suite.exe);
    cmd.args([name, "--exact", "--test-threads", "1"])
        .current_dir(&suite.crate_dir)
        .env("PATH", path)
        .env("RUST_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .env(docker_shim::STATE_ENV, &state)
        .env(docker_shim::SERVER_ENV, server)
        .env(docker_shim::BINARY_ENV, binary)
        // Plaintext unless a case asks for TLS; TLS with the server's name checked.
        .env("ZK_TEST_TLS", "false")
        .env("ZK_TLS_HOSTNAME_VERIFICATION", "true")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0);
    let clock = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {}", suite.exe.display()))?;
    let status = wait_for_exit(&mut child, TEST_TIMEOUT);
    if status.is_none() {
        stop_group(&mut child, Duration::from_secs(2));
    }
    let took = clock.elapsed();
    docker_shim::kill_all(&state);
    let output = strip_ansi(&std::fs::read_to_string(&out_path).unwrap_or_default());
    // `test NAME ... ok`, or `test NAME - should panic ... ok`.
    let passed = status.is_some_and(|s| s.success())
        && output
            .lines()
            .any(|l| l.starts_with(&format!("test {name} ")) && l.ends_with(" ... ok"))
        && output.contains("test result: ok. 1 passed");
    let message = match status {
        _ if passed => String::new(),
        None => format!(
            "did not finish within {}s (stopped)",
            TEST_TIMEOUT.as_secs()
        ),
        Some(_) if output.contains("0 passed; 0 failed") => {
            bail!("the suite has no test named {name}")
        }
        Some(status) => failure_message(name, &output)
            .unwrap_or_else(|| format!("exited with {status} without a failure message")),
    };
    let kept = if passed {
        crate::remove_path(&state)?;
        None
    } else {
        Some(state)
    };
    Ok(Outcome {
        passed,
        message,
        took,
        kept,
    })
}

/// `text` without ANSI colour sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The panic messages (and libtest's notes on `should_panic`) in a failed test's captured
/// output.
fn failure_message(name: &str, output: &str) -> Option<String> {
    let header = format!("---- {name} stdout ----");
    let section = match output.find(&header) {
        Some(at) => {
            let rest = &output[at + header.len()..];
            rest.find("\nfailures:\n").map_or(rest, |end| &rest[..end])
        }
        None => output,
    };
    let mut message: Vec<&str> = Vec::new();
    let mut in_panic = false;
    for line in section.lines() {
        if line.contains("panicked at ") {
            in_panic = true;
            message.push(line);
            continue;
        }
        if line.starts_with("note: test did not panic")
            || line.starts_with("note: panic did not contain expected string")
        {
            in_panic = true;
            message.push(line);
            continue;
        }
        if in_panic {
            if line.starts_with("note: run with `RUST_BACKTRACE")
                || line.starts_with("stack backtrace:")
                || line.trim().is_empty() && message.last().is_some_and(|l| l.trim().is_empty())
            {
                in_panic = false;
                continue;
            }
            message.push(line);
        }
        if message.len() >= 40 {
            message.push("...");
            break;
        }
    }
    while message.last().is_some_and(|l| l.trim().is_empty()) {
        message.pop();
    }
    (!message.is_empty()).then(|| message.join("\n"))
}

// ---------------------------------------------------------------------------------------
// Results

fn print_results(tests: &[String], reference: &[Outcome], ours: &[Outcome]) {
    let width = tests.iter().map(String::len).max().unwrap_or(4).max(4);
    println!();
    println!("zookeeper-client's tests/{TEST_TARGET}.rs, per test:");
    println!(
        "  {:<width$}  {:<24}  zk-server",
        "test", "Apache ZooKeeper 3.8.0"
    );
    for (name, (zk, us)) in tests.iter().zip(reference.iter().zip(ours)) {
        println!("  {name:<width$}  {:<24}  {}", zk.short(), us.short());
    }
    for (name, why) in EXCLUDED.iter().chain(NOT_BUILT) {
        println!("  {name:<width$}  left out: {why}");
    }
    let rows = || tests.iter().zip(reference.iter().zip(ours));
    type Selection = fn(&Outcome, &Outcome) -> bool;
    let sections: [(&str, Selection); 3] = [
        (
            "pass on Apache ZooKeeper 3.8.0, fail on zk-server",
            |zk, us| zk.passed && !us.passed,
        ),
        (
            "pass on zk-server, fail on Apache ZooKeeper 3.8.0",
            |zk, us| !zk.passed && us.passed,
        ),
        ("fail on both", |zk, us| !zk.passed && !us.passed),
    ];
    for (title, selected) in sections {
        println!();
        println!("{title}:");
        let mut any = false;
        for (name, (zk, us)) in rows().filter(|(_, (zk, us))| selected(zk, us)) {
            any = true;
            let intended = INTENDED_DIFFERENCES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, why)| format!(" (intended: {why})"))
                .unwrap_or_default();
            println!("  {name}{intended}");
            for (label, outcome) in [("Apache ZooKeeper", zk), ("zk-server", us)] {
                if !outcome.passed {
                    println!("    {label}:");
                    for line in outcome.text().lines() {
                        println!("      {line}");
                    }
                }
            }
        }
        if !any {
            println!("  (none)");
        }
    }
    for (name, why) in INTENDED_DIFFERENCES {
        let passes = rows().any(|(n, (_, us))| n == name && us.passed);
        if passes {
            println!(
                "note: {name} passes on zk-server now; drop it from INTENDED_DIFFERENCES ({why})"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_extracted() {
        let output = "\nrunning 1 test\ntest t ... FAILED\n\nfailures:\n\n---- t stdout ----\n\
                      starting plaintext zookeeper server 3.9.0 ...\n\
                      thread 't' panicked at tests/zookeeper.rs:10:5:\n\
                      assertion `left == right` failed\n  left: 1\n right: 2\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a \
                      backtrace\n\
                      \n\nfailures:\n    t\n\ntest result: FAILED. 0 passed; 1 failed\n";
        assert_eq!(
            failure_message("t", output).unwrap(),
            "thread 't' panicked at tests/zookeeper.rs:10:5:\n\
             assertion `left == right` failed\n  left: 1\n right: 2"
        );
        assert_eq!(strip_ansi("\u{1b}[1mDiff\u{1b}[0m <"), "Diff <");
        let no_panic = "---- t stdout ----\nnote: test did not panic as expected at x.rs:1:1\n\
                        \nfailures:\n";
        assert_eq!(
            failure_message("t", no_panic).unwrap(),
            "note: test did not panic as expected at x.rs:1:1"
        );
    }
}
