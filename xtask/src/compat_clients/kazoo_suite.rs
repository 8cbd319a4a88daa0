//! kazoo's own tests for TLS and SASL DIGEST-MD5 (`TestSSLClient` in
//! `kazoo/tests/test_client.py`, and `kazoo/tests/test_sasl.py`) against one server, and
//! for dynamic reconfiguration (`TestReconfig`) against a three-member ensemble,
//! unmodified, from kazoo's source release, against Apache ZooKeeper 3.8.0 and against
//! our server.
//!
//! kazoo's harness starts its servers itself, as `java -cp $ZOOKEEPER_CLASSPATH ...
//! QuorumPeerMain zoo.cfg`, with a zoo.cfg of its own (a secure client port, JKS stores it
//! writes with pyjks, certificates it makes with pyOpenSSL, the SASL provider, and a JAAS
//! file named by `-Djava.security.auth.login.config`). Against Apache ZooKeeper that is
//! what runs (Debian's jar, with Netty's codec and resolver on the class path). Against
//! ours, a `java` first on the harness's `PATH` runs zk-server on that zoo.cfg with the
//! `-D` flags as `SERVER_JVMFLAGS` (as `zkServer.sh` hands them), and passes any other java
//! command to the real one.
//!
//! The venv (pytest, pyjks, pyOpenSSL before 26.2, whose `X509Extension` the harness
//! uses, pure-sasl) and kazoo's source are set up under the cargo target directory on
//! first use.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::{Client, Report, Servers, Unit, target_dir};
use crate::servers::server_classpath;

/// kazoo's release whose tests run.
const KAZOO_VERSION: &str = "2.11.0";
/// The tests, each set with the size of the ensemble kazoo's harness starts for it:
/// kazoo's TLS client test and its SASL tests (the GSSAPI ones skip themselves without a
/// Kerberos setup) on one server, its reconfiguration tests on three.
const TESTS: &[(&[&str], usize)] = &[
    (
        &[
            "kazoo/tests/test_client.py::TestSSLClient",
            "kazoo/tests/test_sasl.py",
        ],
        1,
    ),
    (&["kazoo/tests/test_client.py::TestReconfig"], 3),
];
/// Under the cargo target directory.
const SUITE_DIR: &str = "kazoo-suite";
/// The test dependencies, as kazoo's `test` and `sasl` extras name them (pyOpenSSL before
/// 26.2: the harness makes its certificates with `X509Extension`, removed there).
const PACKAGES: &[&str] = &["pytest", "pyjks", "pyopenssl<26.2", "pure-sasl"];

/// The `java` kazoo's harness runs for our server.
const JAVA_SHIM: &str = r#"#!/bin/sh
# Written by cargo xtask compat-clients: kazoo's harness starts "java ... QuorumPeerMain
# zoo.cfg"; this runs zk-server on that zoo.cfg with the -D flags as SERVER_JVMFLAGS.
case " $* " in
  *" org.apache.zookeeper.server.quorum.QuorumPeerMain "*) ;;
  *) exec "$REAL_JAVA" "$@" ;;
esac
flags=""
for arg in "$@"; do
  case "$arg" in -D*) flags="$flags $arg" ;; esac
  cfg="$arg"
done
echo "$cfg" >> "$SHIM_STARTS"
SERVER_JVMFLAGS="$flags" NO_COLOR=1 exec "$ZK_SERVER_BINARY" "$cfg"
"#;

fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// The venv and kazoo's source tree, made on first use.
fn prepare(base: &Path) -> Result<(PathBuf, PathBuf)> {
    let venv = base.join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        std::fs::create_dir_all(base)?;
        run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run_checked(
            Command::new(venv.join("bin/pip"))
                .args(["install", "-q"])
                .args(PACKAGES),
        )?;
    }
    let source = base.join(format!("kazoo-{KAZOO_VERSION}"));
    if !source.join("kazoo/tests").is_dir() {
        run_checked(
            Command::new(venv.join("bin/pip"))
                .args(["download", "-q", "--no-deps", "--no-binary", ":all:"])
                .arg(format!("kazoo=={KAZOO_VERSION}"))
                .arg("-d")
                .arg(base),
        )?;
        run_checked(
            Command::new("tar")
                .arg("xzf")
                .arg(base.join(format!("kazoo-{KAZOO_VERSION}.tar.gz")))
                .arg("-C")
                .arg(base),
        )?;
    }
    Ok((python, source))
}

/// The first of ten consecutive loopback ports, all free, for the harness's server (its
/// client, election, leader, admin and secure ports), above xtask's own port blocks and
/// below the ephemeral range.
fn port_offset() -> Result<u16> {
    (31_000..32_600)
        .step_by(10)
        .find(|&base| (base..base + 10).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()))
        .context("no ten free ports for kazoo's harness in 31000..32600")
}

/// Each test's outcome (`PASSED`, `FAILED`, `SKIPPED`, `ERROR`) from pytest's `-rA`
/// summary.
fn outcomes(output: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in output.lines() {
        for word in ["PASSED", "FAILED", "SKIPPED", "ERROR"] {
            let Some(rest) = line.strip_prefix(&format!("{word} ")) else {
                continue;
            };
            // "SKIPPED [2] file:line: reason" stands for the tests skipped there.
            let rest = match rest.strip_prefix('[') {
                Some(counted) => counted.split_once("] ").map_or(rest, |(_, r)| r),
                None => rest,
            };
            if !rest.starts_with("kazoo/") {
                continue;
            }
            let name = match word {
                "SKIPPED" => rest.split(": ").next().unwrap_or(rest),
                _ => rest.split(" - ").next().unwrap_or(rest),
            };
            out.insert(name.trim().to_owned(), word.to_owned());
        }
    }
    out
}

/// Runs `tests` against one server or ensemble of `size` members (ours with `ours`);
/// returns the outcomes and pytest's output.
fn run_one(
    python: &Path,
    source: &Path,
    base: &Path,
    (tests, size): (&[&str], usize),
    ours: Option<&Path>,
) -> Result<(BTreeMap<String, String>, String)> {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pytest", "-rA", "-p", "no:cacheprovider", "-o"])
        .arg("addopts=")
        .args(tests)
        .current_dir(source)
        .env("ZOOKEEPER_VERSION", "3.8.0")
        .env("ZOOKEEPER_CLASSPATH", server_classpath().join(":"))
        .env("ZOOKEEPER_CLUSTER_SIZE", size.to_string())
        .env("ZOOKEEPER_PORT_OFFSET", port_offset()?.to_string())
        .stdin(Stdio::null());
    if let Some(binary) = ours {
        let bin = base.join("bin");
        std::fs::create_dir_all(&bin)?;
        let java = bin.join("java");
        std::fs::write(&java, JAVA_SHIM)?;
        let mut permissions = std::fs::metadata(&java)?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&java, permissions)?;
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin];
        dirs.extend(std::env::split_paths(&path));
        let _ = std::fs::remove_file(base.join("starts"));
        cmd.env("PATH", std::env::join_paths(dirs)?)
            .env("REAL_JAVA", which_java()?)
            .env("ZK_SERVER_BINARY", binary)
            .env("SHIM_STARTS", base.join("starts"));
    }
    let output = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if ours.is_some() {
        // The harness really ran zk-server, not a JVM.
        let starts = std::fs::read_to_string(base.join("starts")).unwrap_or_default();
        if starts.lines().count() == 0 {
            bail!("kazoo's harness never started zk-server through the java shim");
        }
        eprintln!(
            "  zk-server started {} times by kazoo's harness",
            starts.lines().count()
        );
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((outcomes(&text), text))
}

/// The real `java` on `PATH`.
fn which_java() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("java"))
        .find(|java| java.is_file())
        .context("no java on PATH")
}

pub(super) fn run(servers: &Servers<'_>, report: &mut Report) -> Result<()> {
    let started = Instant::now();
    let base = target_dir().join(SUITE_DIR);
    let (python, source) = prepare(&base)?;
    let binary = servers
        .options
        .zk_server
        .clone()
        .unwrap_or_else(|| target_dir().join("debug/zk-server"));
    let mut reference = BTreeMap::new();
    let mut ours = BTreeMap::new();
    let mut ours_text = String::new();
    for &(tests, size) in TESTS {
        eprintln!(
            "  kazoo {KAZOO_VERSION}, {size} server(s): {}",
            tests.join(" ")
        );
        let (zk, zk_text) = run_one(&python, &source, &base, (tests, size), None)?;
        let (us, us_text) = run_one(&python, &source, &base, (tests, size), Some(&binary))?;
        if zk.is_empty() || us.is_empty() {
            bail!(
                "pytest reported no tests\n--- Apache ZooKeeper:\n{zk_text}\n--- ours:\n{us_text}"
            );
        }
        reference.extend(zk);
        ours.extend(us);
        ours_text.push_str(&us_text);
    }
    // Every test either run reported, once each.
    let names: std::collections::BTreeSet<&String> = reference.keys().chain(ours.keys()).collect();
    let mut units = Vec::new();
    for name in names {
        let zk = reference.get(name).map_or("absent", String::as_str);
        let us = ours.get(name).map_or("absent", String::as_str);
        eprintln!("  {name}: Apache ZooKeeper {zk}, zk-server {us}");
        units.push(Unit {
            client: Client::KazooSuite,
            case: "kazoo's TLS, SASL and reconfiguration tests".into(),
            command: name.clone(),
            reference: zk.to_owned(),
            ours: if us == zk || us == "PASSED" {
                us.to_owned()
            } else {
                format!("{us}\n{}", tail(&ours_text, 60))
            },
            pass: us == "PASSED" || us == zk,
            order_only: false,
            intended: None,
        });
    }
    report.record_case(units, servers.options.keep_going, servers.options.verbose);
    eprintln!(
        "  kazoo's suite took {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    lines.into_iter().skip(skip).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytest_summaries_give_each_tests_outcome() {
        let text = "\
PASSED kazoo/tests/test_client.py::TestSSLClient::test_create
FAILED kazoo/tests/test_sasl.py::TestSASLDigestAuthentication::test_invalid_sasl_auth - assert
SKIPPED [2] kazoo/tests/test_sasl.py:136: Test Kerberos environ not setup.
PASSED                                                                   [ 14%]
=== 1 failed, 1 passed, 1 skipped in 3.2s ===";
        let got = outcomes(text);
        assert_eq!(
            got.get("kazoo/tests/test_client.py::TestSSLClient::test_create")
                .map(String::as_str),
            Some("PASSED")
        );
        assert_eq!(
            got.get(
                "kazoo/tests/test_sasl.py::TestSASLDigestAuthentication::test_invalid_sasl_auth"
            )
            .map(String::as_str),
            Some("FAILED")
        );
        assert_eq!(
            got.get("kazoo/tests/test_sasl.py:136").map(String::as_str),
            Some("SKIPPED")
        );
        assert_eq!(got.len(), 3, "{got:?}");
    }
}
