//! `cargo xtask <command>`: the project's automation. Run `cargo xtask help` for the list.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const HELP: &str = "\
cargo xtask <command>

  ci                 fmt --check, clippy -D warnings, and every test (what .ci/run runs)
  fixtures           regenerate jute golden bytes with Apache ZooKeeper's own jute classes
                     (needs Debian's `zookeeper` package and a JDK)
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

fn fixtures() -> Result<()> {
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
    let classpath = jars
        .iter()
        .map(|jar| jar.display().to_string())
        .collect::<Vec<_>>();
    let build = root().join("target/xtask-java");
    std::fs::create_dir_all(&build)?;
    let source = root().join("xtask/java/GenJuteFixtures.java");
    run(Command::new("javac")
        .arg("-cp")
        .arg(classpath.join(":"))
        .arg("-d")
        .arg(&build)
        .arg(&source))?;

    let out = root().join("jute/tests/fixtures");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    let full_classpath = std::iter::once(build.display().to_string()).chain(classpath);
    run(Command::new("java")
        .arg("-cp")
        .arg(full_classpath.collect::<Vec<_>>().join(":"))
        .arg("GenJuteFixtures")
        .arg(&out))?;
    let count = std::fs::read_dir(&out)?.count();
    eprintln!("wrote {count} files to {}", out.display());
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
