//! `cargo xtask <command>`: the project's automation. Run `cargo xtask help` for the list.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const HELP: &str = "\
cargo xtask <command>

  ci                 fmt --check, clippy -D warnings, and every test (what .ci/run runs)
  fixtures           regenerate jute golden bytes with Apache ZooKeeper's own jute classes
                     (needs Debian's `zookeeper` package and a JDK)
  record-tree        run every datatree/tests/reference/*/script.txt against a real
                     in-process Apache ZooKeeper 3.8.0 server and rewrite that scenario's
                     expected.txt, tree.txt and version-2/ (needs the same package and JDK)
  fuzz [SECONDS]     run the jute frame+record fuzzer (cargo-fuzz, libFuzzer) for SECONDS
                     (default 60), seeded with the golden fixtures; needs cargo-fuzz
  bench              run the criterion benchmarks
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fixtures") => fixtures(),
        Some("record-tree") => record_tree(),
        Some("fuzz") => fuzz(rest),
        Some("bench") => bench(rest),
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
    run(cargo().args(["test", "--workspace"]))
}

fn bench(rest: &[String]) -> Result<()> {
    run(cargo().args(["bench", "--workspace"]).args(rest))
}

/// Where Debian's `zookeeper` package puts the reference jars.
const JAVA_DIR: &str = "/usr/share/java";
const JARS: &[&str] = &["zookeeper-jute.jar", "zookeeper.jar", "slf4j-api.jar"];
/// Optional: silences SLF4J's "no binding" warning when present.
const QUIET_LOGGING_JAR: &str = "slf4j-nop.jar";

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

/// Compiles `xtask/java/<name>.java` against `classpath`; returns the classpath
/// to run it with (compiled classes first, then the jars).
fn compile_java(name: &str, classpath: &[String]) -> Result<Vec<String>> {
    let build = root().join("target/xtask-java");
    std::fs::create_dir_all(&build)?;
    let source = root().join(format!("xtask/java/{name}.java"));
    run(Command::new("javac")
        .arg("-cp")
        .arg(classpath.join(":"))
        .arg("-d")
        .arg(&build)
        .arg(&source))?;
    Ok(std::iter::once(build.display().to_string())
        .chain(classpath.iter().cloned())
        .collect())
}

fn fixtures() -> Result<()> {
    let classpath = zookeeper_classpath()?;
    let full_classpath = compile_java("GenJuteFixtures", &classpath)?;

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

    let classpath = zookeeper_classpath()?;
    let mut full_classpath = compile_java("RecordTree", &classpath)?;
    let quiet = Path::new(JAVA_DIR).join(QUIET_LOGGING_JAR);
    if quiet.exists() {
        full_classpath.push(quiet.display().to_string());
    }

    for dir in &scenarios {
        for output in TREE_OUTPUTS {
            let path = dir.join(output);
            let cleared = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else if path.exists() {
                std::fs::remove_file(&path)
            } else {
                Ok(())
            };
            cleared.with_context(|| format!("clearing {}", path.display()))?;
        }
        run(Command::new("java")
            .arg("-cp")
            .arg(full_classpath.join(":"))
            .arg("RecordTree")
            .arg(dir.join("script.txt"))
            .arg(dir))?;
    }
    eprintln!(
        "recorded {} scenarios under {}",
        scenarios.len(),
        reference.display()
    );
    Ok(())
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
