//! `cargo xtask <command>`: the project's automation. Run `cargo xtask help` for the list.

mod admin_compat;
mod bench;
mod chaos;
mod compat_clients;
mod diff;
mod docker_shim;
mod election_bench;
mod ensemble;
mod ensemble_bench;
mod replication_bench;
mod server_sim;
mod servers;
mod tools;
mod tools_bench;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const HELP: &str = "\
cargo xtask <command>

  ci                 fmt --check, clippy -D warnings, docs with warnings denied, cargo
                     package of every library crate, and every test (what .ci/run runs)
  fixtures           regenerate jute golden bytes with Apache ZooKeeper's own jute classes
                     (needs Debian's `zookeeper` package and a JDK)
  record-tree        run every datatree/tests/reference/*/script.txt against a real
                     in-process Apache ZooKeeper 3.8.0 server and rewrite that scenario's
                     expected.txt, tree.txt and version-2/ (needs the same package and JDK)
  record-datadir     run persistence/tests/zk-datadir/script.txt the same way (its `snapshot`
                     lines make the server snapshot and roll its log), rewrite expected.txt,
                     tree.txt, version-2/ (every log.* and snapshot.*) and formatter.txt
                     (ZooKeeper's TxnLogToolkit and SnapshotFormatter -d on each file), then
                     check that ZooKeeper loads version-2/ back to tree.txt
  record-tools       write cli/tests/tools/ours/version-2 with our zk-server (a scripted
                     workload, snapCount=10), then record what Apache ZooKeeper 3.8.0's
                     TxnLogToolkit (dump, chop), SnapshotFormatter (plain, -d, -json),
                     SnapshotComparer and PurgeTxnLog print for it and for
                     persistence/tests/zk-datadir, as zk-tools' golden files under
                     cli/tests/tools/*/expected (needs the same package and JDK)
  compat DATADIR [--tree-out FILE] [--expect-tree FILE]
                     check that Apache ZooKeeper 3.8.0 reads DATADIR/version-2: its
                     TxnLogToolkit on every log.* and SnapshotFormatter on every snapshot.*
                     must exit 0 without exception, error or CRC lines; then ZooKeeper's
                     own loader (FileSnap per snapshot, ZKDatabase.loadDataBase for all, on
                     a copy) must accept it with no digest mismatch or warning; prints the
                     loaded tree in tree.txt format (to FILE with --tree-out) and, with
                     --expect-tree, fails on any difference. Needs the same package and JDK
  compat-admin [--ensemble]
                     the AdminServer's commands (every one, and the aliases) asked of
                     our zk-server and of Apache ZooKeeper 3.8.0 holding the same state
                     (--ensemble: the leaders and followers of two 3-member ensembles);
                     the JSON answers compared field by field (session ids, ports and
                     directories masked, timing figures by type); fails on a difference
                     that is not listed as intended (each listed with its reason)
  compat-clients [--keep-going] [--install]
                 [--only zkcli,zkcli-tls,cli_mt,kazoo,zk-cli,zookeeper-client,
                         kazoo-suite|all]
                 [--verbose] [--record-cli] [--zk-server PATH] [--ensemble]
                     run real ZooKeeper clients (zkCli.sh, the C client cli_mt, kazoo with
                     xtask/python/kazoo_check.py) against our zk-server (debug build, or
                     PATH) and against Apache ZooKeeper 3.8.0, each on a free loopback port
                     with its own data dir; fails on any answer that differs once times,
                     zxids and session ids are masked. zkcli-tls: zkCli.sh over TLS and
                     SASL DIGEST-MD5 (Netty socket, JKS stores, JAAS Client section)
                     against each server's secure port. zk-cli: zkCli.sh's sessions through
                     our shell and through zkCli.sh, each against a fresh Apache ZooKeeper
                     (--record-cli rewrites cli/tests/zkcli/ from zkCli.sh's answers).
                     zookeeper-client: that crate's own integration suite (tests/
                     zookeeper.rs of the version the workspace resolves, copied from the
                     cargo registry to target/zookeeper-client-suite/ and built there),
                     unmodified, against each server through a `docker` shim (this binary)
                     that runs the servers as local processes; every test but the
                     reconfiguration one (TLS and SASL included), each in its own process;
                     fails on a test that fails on zk-server unless listed as an intended
                     difference. kazoo-suite: kazoo's own TLS and SASL tests (its source
                     release's TestSSLClient and test_sasl.py, its harness starting each
                     server, ours through a java shim). Neither of these two is in the
                     default set: --only zookeeper-client,kazoo-suite, or all.
                     Stops at the first failing case unless
                     --keep-going. Needs `apt-get install zookeeper zookeeper-bin` and
                     `pip install kazoo`; --install runs apt-get and puts kazoo in a venv
                     under the cargo target dir. --ensemble: each server as a three-member
                     ensemble (processes on loopback), the clients on a follower (zkcli,
                     cli_mt, kazoo, zk-cli)
  ensemble [N] [--zookeeper] [--dir DIR] [--zk-server PATH]
                     N members (3) on loopback, each a process with its own zoo.cfg, myid
                     and data directory under DIR (target/ensemble, cleared first): our
                     zk-server (release build, or PATH) or, with --zookeeper, Apache
                     ZooKeeper 3.8.0. Prints the connect string once a leader serves;
                     Ctrl-C stops every member
  chaos [--duration 60] [--seed N] [--members 3] [--clients 5] [--registers 8]
        [--faults kill,pause,partition,disk] [--release] [--zk-server PATH] [--keep]
        [--broken]
                     a real ensemble of zk-server processes under a seeded fault schedule
                     (SIGKILL of the leader, a follower, every member; SIGSTOP of the
                     leader until another is elected; links between members cut through
                     per-link forwarders, both ways or one) while zk-client sessions write,
                     compare-and-set, read and create sequential nodes, every operation
                     recorded; after healing, every member must converge and is read
                     directly; the history is checked (linearizable registers, per-session
                     order, sequential names). Prints faults, operations by outcome,
                     failover times; on a violation the seed, the schedule and the
                     smallest failing slice (history in target/chaos/seed-N/).
                     --broken: a build whose leader commits without a quorum; succeeds
                     only if the checkers catch it
  fuzz [SECONDS]     run the jute frame+record fuzzer (cargo-fuzz, libFuzzer) for SECONDS
                     (default 60), seeded with the golden fixtures; needs cargo-fuzz
  bench [OPTIONS]    server benchmark: our zk-server (release build) against Apache ZooKeeper
                     3.8.0 (Debian's package, its own JVM), each a separate process on
                     loopback with the same generated zoo.cfg, driven by one load generator
                     (the zookeeper-client crate): create/setData/getData/exists/90%-read mix
                     latency (1 session x 1 outstanding) and throughput (N sessions x M
                     outstanding), RSS before/after loading Z znodes, cold restart time with
                     them, time for W watchers to hear one setData. Prints progress and a
                     table with ratios against the targets; writes target/bench-report.md.
                     Runs from a release build of xtask (rebuilds and re-runs itself).
                     Options: --secs S (each measurement, 5) --warmup S (1)
                     --clients 16,64 --outstanding 16 --znodes Z (1000000; 0 skips)
                     --load-sessions 8 --load-outstanding 128 --watchers W (1000)
                     --watch-rounds 3 --client-threads 2 --only ours|zookeeper
                     --ops create,setdata,getdata,exists,mix (all)
                     --report FILE --keep (keep the scratch dir with server logs)
  bench micro [ARGS] run the criterion benchmarks (cargo bench --workspace ARGS)
  bench election [--sizes 3,5,7] [--runs 50] [--zk-runs 20] [--only ours|zookeeper]
                     time from leader loss to a new leader: zk-election's gRPC nodes (in
                     process, loopback; the leader shut down) and Apache ZooKeeper 3.8.0
                     (one JVM per member, loopback; the leader killed with SIGKILL, a new
                     one found with srvr); the stopped member rejoins before each next run.
                     Prints median and p99 per ensemble size
  bench tools [--znodes 1000000] [--keep]
                     zk-tools (release) against ZooKeeper 3.8.0's TxnLogToolkit,
                     SnapshotFormatter (-d, -json) and SnapshotComparer on a generated
                     data directory of N znodes (one logged create each, snapshots at
                     half and at the end): wall time and peak RSS of each; the digest
                     check's time; writes target/bench-tools.md
  bench ensemble [--secs 5] [--warmup 1] [--znodes 1000000] [--rest 30]
                 [--only ours|zookeeper] [--report FILE] [--keep]
                     three-member ensembles of our zk-server and of Apache ZooKeeper 3.8.0
                     (processes on loopback, forceSync on), one after the other: create and
                     setData 16x16 through the leader and a follower, getData 16x16 through
                     a follower, create p50/p99 at 1x1 through a follower, failover (leader
                     SIGKILLed until a write completes on a survivor), rejoin of a wiped
                     follower by SNAP with Z znodes; a table of ratios against the targets
                     (target/bench-ensemble-report.md). Before each ensemble: `sync`, then
                     the machine rests (--rest seconds, then until its CPUs are idle)
  bench replication [--secs 5] [--outstanding 1,64]
                     zk-replication's commits: three members over loopback gRPC and one
                     member (its runtime, ZooKeeper's txn log, fsync on), and
                     zk-persistence's GroupCommit alone, each a closed loop of 100-byte
                     txns: commits per second, p50 and p99 from proposing to committed
  sim [--seeds N] [--seed SHAPE:SEED]
                     zk-replication's seeded simulation of election and Zab together
                     (3/5/7 voters, observers, hierarchical groups, faults), N seeds a
                     shape (10000), release build; or one failing seed replayed with its
                     trace
  server-sim [--seeds N] [--start S] [--seed S] [--duration-ms MS] [--members N]
             [--clients N] [--no-faults] [--lying-disk]
                     the whole server in zk-server's seeded simulation: its engines with
                     zk-election and zk-replication over a simulated network, disk and
                     clock, simulated clients recording every operation, crashes (one, the
                     leader, all), partitions (both ways, one-way) and slow fsync; each
                     seed's history checked as chaos checks it (100 seeds of 20 simulated
                     seconds); --lying-disk fakes fsync and must be caught
  diff [--seed N] [--ops N] [--sessions N] [--verbose] [--keep] [--check-watches]
       [--readable-acls] [--ensemble]
                     seeded random differential test: our zk-server (debug build) and Apache
                     ZooKeeper 3.8.0 on loopback, N sessions each (4) through the
                     zookeeper-client crate, the same random ops (2000) on both one at a
                     time: creates of every mode, deletes, setData, reads, ACLs, multi, sync,
                     counts, ephemerals, one-shot and persistent watches, session reopens.
                     Every answer and every watch event is compared; stops at the first
                     difference with the op, both answers and the seed to replay it.
                     --readable-acls skips ACLs that deny some sessions READ (Debian's
                     ZooKeeper drops watch events for them, CVE-2024-23944);
                     --check-watches also compares wchc after every op; --ensemble runs
                     each server as a three-member ensemble, the sessions on a follower
";

fn main() -> Result<()> {
    // Started through the `docker` symlink that `compat-clients` puts on the suite's PATH.
    if docker_shim::invoked_as_docker() {
        docker_shim::main();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fixtures") => fixtures(),
        Some("record-tree") => record_tree(),
        Some("record-datadir") => record_datadir(),
        Some("record-tools") => tools::record(),
        Some("compat") => compat(rest),
        Some("compat-clients") => compat_clients::compat_clients(rest),
        Some("compat-admin") => admin_compat::run(rest),
        Some("fuzz") => fuzz(rest),
        Some("diff") => diff::run(rest),
        Some("ensemble") => ensemble::run(rest),
        Some("sim") => sim(rest),
        Some("server-sim") => server_sim::run(rest),
        Some("chaos") => chaos::run(rest),
        Some("bench") => match rest.first().map(String::as_str) {
            Some("micro") => micro_bench(&rest[1..]),
            Some("election") => election_bench::run(&rest[1..]),
            Some("replication") => replication_bench::run(&rest[1..]),
            Some("ensemble") => ensemble_bench::run(&rest[1..]),
            Some("tools") => tools_bench::run(&rest[1..]),
            _ => bench::run(rest),
        },
        Some("help" | "--help" | "-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown xtask command `{other}`\n\n{HELP}"),
    }
}

/// The workspace root (the parent of this crate's folder).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn ci() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .args(["doc", "--workspace", "--exclude", "xtask", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    run(cargo()
        .args(["package", "--allow-dirty"])
        .args(LIBRARY_CRATES.iter().flat_map(|c| ["-p", c])))?;
    run(cargo().args(["test", "--workspace"]))
}

/// The crates published as libraries, which `ci` packages.
const LIBRARY_CRATES: &[&str] = &[
    "zk-jute",
    "zk-watch",
    "zk-datatree",
    "zk-persistence",
    "zk-election",
    "zk-replication",
    "zk-client",
    "zk-server",
];

/// Long runs of zk-replication's simulation (election and Zab together): the seeded
/// shapes with `--seeds N` each (default 10,000), or one `--seed shape:seed` replayed with
/// its trace, in a release build.
fn sim(rest: &[String]) -> Result<()> {
    let mut seeds = "10000".to_string();
    let mut one = None;
    let mut args = rest.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .with_context(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--seeds" => seeds = value()?,
            "--seed" => one = Some(value()?),
            other => bail!("unknown option {other}"),
        }
    }
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "-p",
        "zk-replication",
        "--test",
        "simulation",
    ]);
    cmd.env("ZK_ZAB_SEEDS", &seeds);
    if let Some(one) = one {
        cmd.env("ZK_ZAB_SEED", one);
    }
    run(cmd.args(["--", "--nocapture"]))
}

fn micro_bench(rest: &[String]) -> Result<()> {
    run(cargo().args(["bench", "--workspace"]).args(rest))
}

/// Where Debian's `zookeeper` package puts the reference jars.
const JAVA_DIR: &str = "/usr/share/java";
const JARS: &[&str] = &["zookeeper-jute.jar", "zookeeper.jar", "slf4j-api.jar"];
/// Optional: silences SLF4J's "no binding" warning when present.
const QUIET_LOGGING_JAR: &str = "slf4j-nop.jar";
/// Optional: sends ZooKeeper's own warnings and errors to stderr (LoadDataDir sets
/// the level to warn).
const WARN_LOGGING_JAR: &str = "slf4j-simple.jar";

/// The reference jars, checked to exist, plus the JDK tools, checked to run.
fn zookeeper_classpath() -> Result<Vec<String>> {
    let jars: Vec<PathBuf> = JARS
        .iter()
        .map(|jar| Path::new(JAVA_DIR).join(jar))
        .collect();
    if let Some(missing) = jars.iter().find(|jar| !jar.exists()) {
        bail!(
            "{} is missing: this needs Apache ZooKeeper's jars from Debian's `zookeeper` \
             package (apt-get install zookeeper) and a JDK (javac, java)",
            missing.display()
        );
    }
    for tool in ["javac", "java"] {
        let works = Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !works {
            bail!(
                "`{tool}` is missing or broken: this needs a JDK (javac, java), e.g. \
                 apt-get install default-jdk-headless"
            );
        }
    }
    Ok(jars.iter().map(|jar| jar.display().to_string()).collect())
}

/// `classpath` plus `/usr/share/java/<jar>` when that jar is installed.
fn with_optional_jar(mut classpath: Vec<String>, jar: &str) -> Vec<String> {
    let path = Path::new(JAVA_DIR).join(jar);
    if path.exists() {
        classpath.push(path.display().to_string());
    }
    classpath
}

/// Compiles `xtask/java/<name>.java` for each name, together, against `classpath`;
/// returns the classpath to run them with (compiled classes first, then the jars).
fn compile_java(names: &[&str], classpath: &[String]) -> Result<Vec<String>> {
    let build = root().join("target/xtask-java");
    std::fs::create_dir_all(&build)?;
    run(Command::new("javac")
        .arg("-cp")
        .arg(classpath.join(":"))
        .arg("-d")
        .arg(&build)
        .args(
            names
                .iter()
                .map(|name| root().join(format!("xtask/java/{name}.java"))),
        ))?;
    Ok(std::iter::once(build.display().to_string())
        .chain(classpath.iter().cloned())
        .collect())
}

/// `java` on `classpath`, in UTC with an English locale and UTF-8 output:
/// ZooKeeper's tools print dates in the JVM's default zone and locale, and text
/// in its default encoding.
fn java(classpath: &[String]) -> Command {
    let mut cmd = Command::new("java");
    cmd.env("TZ", "UTC")
        .args([
            "-Duser.timezone=UTC",
            "-Duser.language=en",
            "-Duser.country=US",
            "-Dfile.encoding=UTF-8",
            "-Dsun.stdout.encoding=UTF-8",
            "-Dsun.stderr.encoding=UTF-8",
        ])
        .arg("-cp")
        .arg(classpath.join(":"));
    cmd
}

fn fixtures() -> Result<()> {
    let classpath = zookeeper_classpath()?;
    let full_classpath = compile_java(&["GenJuteFixtures"], &classpath)?;

    let out = root().join("jute/tests/fixtures");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    run(Command::new("java")
        .arg("-cp")
        .arg(full_classpath.join(":"))
        .arg("GenJuteFixtures")
        .arg(&out))?;
    let count = std::fs::read_dir(&out)?.count();
    eprintln!("wrote {count} files to {}", out.display());
    Ok(())
}

/// What `RecordTree` writes next to a scenario's `script.txt`.
const TREE_OUTPUTS: &[&str] = &["expected.txt", "tree.txt", "version-2"];

/// Removes a file or a directory tree, if it exists.
fn remove_path(path: &Path) -> Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else if path.exists() {
        std::fs::remove_file(path)
    } else {
        Ok(())
    };
    removed.with_context(|| format!("clearing {}", path.display()))
}

/// Runs `dir/script.txt` with `RecordTree` (on `classpath`), rewriting its outputs in `dir`.
fn record_scenario(dir: &Path, classpath: &[String]) -> Result<()> {
    for output in TREE_OUTPUTS {
        remove_path(&dir.join(output))?;
    }
    run(java(classpath)
        .arg("RecordTree")
        .arg(dir.join("script.txt"))
        .arg(dir))
}

fn record_tree() -> Result<()> {
    let reference = root().join("datatree/tests/reference");
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(&reference)
        .with_context(|| format!("reading {}", reference.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    scenarios.retain(|dir| dir.join("script.txt").is_file());
    scenarios.sort();
    if scenarios.is_empty() {
        bail!("no {}/*/script.txt to record", reference.display());
    }

    let jars = zookeeper_classpath()?;
    let classpath = with_optional_jar(compile_java(&["RecordTree"], &jars)?, QUIET_LOGGING_JAR);
    for dir in &scenarios {
        record_scenario(dir, &classpath)?;
    }
    eprintln!(
        "recorded {} scenarios under {}",
        scenarios.len(),
        reference.display()
    );
    Ok(())
}

/// The persistence crate's fixture: a data directory written by ZooKeeper itself.
const DATADIR_FIXTURE: &str = "persistence/tests/zk-datadir";

fn record_datadir() -> Result<()> {
    let dir = root().join(DATADIR_FIXTURE);
    if !dir.join("script.txt").is_file() {
        bail!("no {}/script.txt to record", dir.display());
    }
    let jars = zookeeper_classpath()?;
    let classes = compile_java(&["RecordTree", "LoadDataDir"], &jars)?;
    let out = dir.join("formatter.txt");
    remove_path(&out)?;
    record_scenario(&dir, &with_optional_jar(classes.clone(), QUIET_LOGGING_JAR))?;

    let tools = with_optional_jar(jars, QUIET_LOGGING_JAR);
    let runs = check_with_tools(&dir.join("version-2"), &tools)?;
    let formatted: String = runs.concat();
    std::fs::write(&out, formatted).with_context(|| format!("writing {}", out.display()))?;

    // What ZooKeeper just wrote must load back to the tree it held.
    let tree = load_with_zookeeper(&dir, &with_optional_jar(classes, WARN_LOGGING_JAR))?;
    compare_trees(&tree, &dir.join("tree.txt"))?;
    eprintln!("recorded {}", dir.display());
    Ok(())
}

/// `cargo xtask compat <datadir> [--tree-out FILE] [--expect-tree FILE]`.
fn compat(rest: &[String]) -> Result<()> {
    const USAGE: &str =
        "usage: cargo xtask compat <datadir> [--tree-out FILE] [--expect-tree FILE]";
    let (mut datadir, mut tree_out, mut expect) = (None, None, None);
    let mut args = rest.iter();
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            "--tree-out" => &mut tree_out,
            "--expect-tree" => &mut expect,
            flag if flag.starts_with('-') => bail!("unknown option `{flag}`\n{USAGE}"),
            _ if datadir.is_none() => {
                datadir = Some(PathBuf::from(arg));
                continue;
            }
            _ => bail!("unexpected argument `{arg}`\n{USAGE}"),
        };
        *slot = Some(PathBuf::from(
            args.next()
                .with_context(|| format!("{arg} needs a file\n{USAGE}"))?,
        ));
    }
    let datadir = std::path::absolute(datadir.context(USAGE)?)?;
    let version_dir = datadir.join("version-2");
    if !version_dir.is_dir() {
        bail!("{} has no version-2/ directory", datadir.display());
    }

    let jars = zookeeper_classpath()?;
    let classes = compile_java(&["RecordTree", "LoadDataDir"], &jars)?;
    // Both steps run whatever the first one says, to show everything at once.
    let tools = check_with_tools(&version_dir, &with_optional_jar(jars, QUIET_LOGGING_JAR));
    let loaded = load_with_zookeeper(&datadir, &with_optional_jar(classes, WARN_LOGGING_JAR));
    let tree = match (tools, loaded) {
        (Ok(_), Ok(tree)) => tree,
        (Err(tools), Ok(_)) => return Err(tools),
        (Ok(_), Err(load)) => return Err(load),
        (Err(tools), Err(load)) => return Err(load.context(format!("{tools:#}"))),
    };

    let mut text = tree.join("\n");
    text.push('\n');
    match &tree_out {
        Some(file) => {
            std::fs::write(file, &text).with_context(|| format!("writing {}", file.display()))?
        }
        None => print!("{text}"),
    }
    if let Some(expected) = &expect {
        compare_trees(&tree, expected)?;
    }
    eprintln!("compat: Apache ZooKeeper 3.8.0 reads {}", datadir.display());
    Ok(())
}

/// A file of a `version-2/` directory that ZooKeeper's tools read.
#[derive(Clone, Copy, PartialEq)]
enum DataFile {
    Log,
    Snapshot,
}

impl DataFile {
    /// The tool, with its arguments before the file name.
    fn tool(self) -> &'static [&'static str] {
        match self {
            DataFile::Log => &["org.apache.zookeeper.server.persistence.TxnLogToolkit"],
            DataFile::Snapshot => &["org.apache.zookeeper.server.SnapshotFormatter", "-d"],
        }
    }

    /// Whether `line` of the tool's stdout can hold client data, which is no sign of
    /// trouble whatever words it contains. TxnLogToolkit prints txn bodies as text,
    /// multi sub-txns as their raw bytes (a 0x0a byte starts a new line), and its
    /// problems as "CRC ERROR - <txn>" lines or on stderr; SnapshotFormatter prints
    /// paths and base64 data on lines of their own.
    fn carries_data(self, line: &str) -> bool {
        match self {
            DataFile::Log => !line.starts_with("CRC "),
            DataFile::Snapshot => line.starts_with('/') || line.starts_with("  data = "),
        }
    }

    /// The one-line summary of what the tool reports, or what it failed to report.
    fn summary(self, stdout: &str) -> Result<String, String> {
        let after = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .ok_or(format!("no `{prefix}...` line"))
        };
        match self {
            DataFile::Log => {
                let header = after("ZooKeeper Transactional Log File with dbid ")?;
                let count = after("EOF reached after ")?.trim_end_matches(" txns.");
                let mut zxids = stdout
                    .lines()
                    .filter(|l| l.contains(" session 0x"))
                    .filter_map(|l| l.split(" zxid ").nth(1)?.split(' ').next());
                let range = match (zxids.next(), zxids.next_back()) {
                    (Some(first), Some(last)) => format!(", zxids {first}..{last}"),
                    (Some(only), None) => format!(", zxid {only}"),
                    _ => String::new(),
                };
                Ok(format!("{count} txns{range} (dbid {header})"))
            }
            DataFile::Snapshot => {
                // Its count is DataTree.getNodeCount(), which holds the root twice.
                let count = after("ZNode Details (count=")?.trim_end_matches("):");
                let znodes = stdout.lines().filter(|l| l.starts_with('/')).count();
                let sessions = stdout
                    .lines()
                    .skip_while(|l| !l.starts_with("Session Details"))
                    .filter(|l| l.starts_with("0x"))
                    .count();
                let last = after("Last zxid: ")?;
                Ok(format!(
                    "{znodes} znodes (count={count}), {sessions} sessions, last zxid {last}"
                ))
            }
        }
    }
}

/// `version-2/` files ZooKeeper's tools read, by zxid (the hex number after the
/// first dot, as ZooKeeper parses it), then name.
fn data_files(version_dir: &Path) -> Result<Vec<(DataFile, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(version_dir)
        .with_context(|| format!("reading {}", version_dir.display()))?
    {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let mut parts = name.split('.');
        let kind = match parts.next() {
            Some("log") => DataFile::Log,
            Some("snapshot") => DataFile::Snapshot,
            _ => continue,
        };
        match parts.next().map(|hex| u64::from_str_radix(hex, 16)) {
            Some(Ok(zxid)) => files.push((zxid, name.to_string(), kind, path.clone())),
            _ => eprintln!("ignoring {name}: no hex zxid after the dot"),
        }
    }
    files.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(files
        .into_iter()
        .map(|(_, _, kind, path)| (kind, path))
        .collect())
}

/// Runs ZooKeeper's TxnLogToolkit on every log and SnapshotFormatter (`-d`) on every
/// snapshot in `version_dir`, printing one summary line per file; fails if a tool
/// exits non-zero, says nothing of what it found, or prints a line (outside client
/// data) mentioning an exception, an error or a CRC. Returns, per file, a header
/// naming tool and file, then what the tool printed.
fn check_with_tools(version_dir: &Path, classpath: &[String]) -> Result<Vec<String>> {
    let files = data_files(version_dir)?;
    if files.is_empty() {
        bail!(
            "{} holds no log.* or snapshot.* file",
            version_dir.display()
        );
    }
    let mut runs = Vec::new();
    let mut failed = 0;
    for (kind, path) in files {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let output = java(classpath)
            .args(kind.tool())
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("running {} on {}", kind.tool()[0], path.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);

        let alarming = |line: &str| {
            let lower = line.to_lowercase();
            ["exception", "error", "crc"]
                .iter()
                .any(|word| lower.contains(word))
        };
        let mut problems: Vec<String> = stdout
            .lines()
            .filter(|l| !kind.carries_data(l) && alarming(l))
            .chain(stderr.lines().filter(|l| alarming(l)))
            .map(|l| format!("prints `{l}`"))
            .collect();
        if !output.status.success() {
            problems.push(format!("exits with {}", output.status));
        }
        let tool = kind.tool().join(" ");
        match kind.summary(&stdout) {
            Ok(summary) if problems.is_empty() => eprintln!("{name}: {tool}: {summary}"),
            Ok(_) => {}
            Err(missing) => problems.push(format!("reports nothing usable ({missing})")),
        }
        for problem in &problems {
            eprintln!("{name}: {tool} {problem}");
        }
        failed += usize::from(!problems.is_empty());

        let mut text = format!("==== {tool} version-2/{name}\n{stdout}");
        if !stderr.is_empty() {
            text.push_str(&format!("---- stderr\n{stderr}"));
        }
        runs.push(text);
    }
    if failed > 0 {
        bail!(
            "ZooKeeper's tools object to {failed} file(s) in {}",
            version_dir.display()
        );
    }
    Ok(runs)
}

/// A scratch directory under the system's temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("xtask-{tag}-{}", std::process::id()));
        remove_path(&path)?;
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads a copy of `datadir` with ZooKeeper's own loading code (`LoadDataDir` on
/// `classpath`) and returns the tree it holds, in `tree.txt` format. The input is
/// never written to. Fails if ZooKeeper cannot load it or `LoadDataDir` objects.
fn load_with_zookeeper(datadir: &Path, classpath: &[String]) -> Result<Vec<String>> {
    let scratch = Scratch::new("compat")?;
    let copy = scratch.0.join("version-2");
    std::fs::create_dir_all(&copy)?;
    let version_dir = datadir.join("version-2");
    for entry in std::fs::read_dir(&version_dir)
        .with_context(|| format!("reading {}", version_dir.display()))?
    {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    let tree_file = scratch.0.join("tree.txt");
    let output = java(classpath)
        .arg("LoadDataDir")
        .arg(&scratch.0)
        .arg(&tree_file)
        .stdin(std::process::Stdio::null())
        .output()
        .context("running LoadDataDir")?;
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprint!("{stderr}");
    if !output.status.success() {
        bail!(
            "Apache ZooKeeper does not load {} cleanly (LoadDataDir exits with {})",
            datadir.display(),
            output.status
        );
    }
    // With slf4j-simple at level warn, any line from ZooKeeper's loggers is a
    // warning or an error about the data.
    if let Some(line) = stderr
        .lines()
        .find(|l| l.contains(" WARN ") || l.contains(" ERROR "))
    {
        bail!(
            "Apache ZooKeeper warns while loading {}: {line}",
            datadir.display()
        );
    }
    let tree = std::fs::read_to_string(&tree_file).context("reading LoadDataDir's tree")?;
    Ok(tree.lines().map(String::from).collect())
}

/// Fails, showing the first differing lines, unless `got` equals the lines of `expected`.
fn compare_trees(got: &[String], expected: &Path) -> Result<()> {
    let want = std::fs::read_to_string(expected)
        .with_context(|| format!("reading {}", expected.display()))?;
    let want: Vec<&str> = want.lines().collect();
    let differing: Vec<usize> = (0..got.len().max(want.len()))
        .filter(|&i| got.get(i).map(String::as_str) != want.get(i).copied())
        .collect();
    if differing.is_empty() {
        eprintln!("tree matches {} ({} lines)", expected.display(), want.len());
        return Ok(());
    }
    for &i in differing.iter().take(5) {
        eprintln!(
            "line {}:\n  expected: {}\n  loaded:   {}",
            i + 1,
            want.get(i).copied().unwrap_or("<none>"),
            got.get(i).map(String::as_str).unwrap_or("<none>")
        );
    }
    bail!(
        "the loaded tree differs from {} on {} line(s) ({} loaded, {} expected)",
        expected.display(),
        differing.len(),
        got.len(),
        want.len()
    )
}

fn fuzz(rest: &[String]) -> Result<()> {
    let seconds: u64 = match rest.first() {
        Some(s) => s
            .parse()
            .with_context(|| format!("`{s}` is not a number of seconds"))?,
        None => 60,
    };
    let has_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_fuzz {
        bail!("cargo-fuzz is not installed: run `cargo install cargo-fuzz --locked`");
    }
    std::fs::create_dir_all(root().join("jute/fuzz/corpus/decode"))?;
    let started = std::time::Instant::now();
    // cargo-fuzz passes unstable sanitizer flags; RUSTC_BOOTSTRAP lets the stable
    // toolchain accept them, so no nightly is needed.
    run(Command::new("cargo")
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("CARGO_MANIFEST_DIR")
        .args(["fuzz", "run", "--fuzz-dir", "jute/fuzz", "decode"])
        .args(["jute/fuzz/corpus/decode", "jute/tests/fixtures", "--"])
        .arg(format!("-max_total_time={seconds}")))?;
    eprintln!("fuzzed for {:.0?}: no crash", started.elapsed());
    Ok(())
}
