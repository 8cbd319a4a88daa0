//! `cargo xtask record-tools`: records what Apache ZooKeeper 3.8.0's own operator tools
//! print for two data directories, as golden files for `zk-tools`' tests
//! (`cli/tests/tools.rs`):
//!
//! - `persistence/tests/zk-datadir/version-2`, written by ZooKeeper itself;
//! - `cli/tests/tools/ours/version-2`, written here by our `zk-server` (a short scripted
//!   workload with `snapCount=10`, so that it holds many fuzzy snapshots and log files).
//!
//! For each: `TxnLogToolkit` on every log, and chopping the longest one at a middle zxid
//! (the chopped file too); `SnapshotFormatter` plain, `-d` and `-json` on every snapshot;
//! `SnapshotComparer` (with and without `-d`) between the first and the last snapshot and
//! between the last two; `PurgeTxnLog -n 3` on a copy. Written to
//! `cli/tests/tools/<set>/expected/`. Needs Debian's `zookeeper` package and a JDK.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use zookeeper_client as zk;

use crate::servers::ServerProc;
use crate::{DataFile, QUIET_LOGGING_JAR, java, root, with_optional_jar, zookeeper_classpath};

/// The folder of the golden files.
const TOOLS_DIR: &str = "cli/tests/tools";

pub(crate) fn record() -> Result<()> {
    let classpath = with_optional_jar(zookeeper_classpath()?, QUIET_LOGGING_JAR);
    let base = root().join(TOOLS_DIR);
    let ours = base.join("ours");
    write_ours(&ours)?;
    for (set, version_dir) in [
        (
            "zookeeper",
            root().join("persistence/tests/zk-datadir/version-2"),
        ),
        ("ours", ours.join("version-2")),
    ] {
        let expected = base.join(set).join("expected");
        if expected.exists() {
            std::fs::remove_dir_all(&expected)?;
        }
        std::fs::create_dir_all(&expected)?;
        record_set(&version_dir, &expected, &classpath)
            .with_context(|| format!("recording {set}"))?;
        eprintln!("recorded {}", expected.display());
    }
    Ok(())
}

/// Runs a ZooKeeper class; returns its stdout (it must exit 0).
fn tool(classpath: &[String], class: &str, args: &[&str]) -> Result<String> {
    let mut cmd = java(classpath);
    cmd.arg(class).args(args).stdin(Stdio::null());
    let output = cmd.output().with_context(|| format!("running {class}"))?;
    if !output.status.success() {
        bail!(
            "{class} {args:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn record_set(version_dir: &Path, expected: &Path, classpath: &[String]) -> Result<()> {
    let (mut logs, mut snapshots) = (Vec::new(), Vec::new());
    for (kind, path) in crate::data_files(version_dir)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match kind {
            DataFile::Log => logs.push(name),
            DataFile::Snapshot => snapshots.push(name),
        }
    }
    if logs.is_empty() || snapshots.len() < 2 {
        bail!("{} needs logs and two snapshots", version_dir.display());
    }
    let path = |name: &str| version_dir.join(name).display().to_string();
    let write = |name: String, text: String| -> Result<()> {
        std::fs::write(expected.join(&name), text).with_context(|| format!("writing {name}"))
    };
    const LOG_TOOL: &str = "org.apache.zookeeper.server.persistence.TxnLogToolkit";
    const SNAP_TOOL: &str = "org.apache.zookeeper.server.SnapshotFormatter";
    const COMPARER: &str = "org.apache.zookeeper.server.SnapshotComparer";
    for name in &logs {
        write(
            format!("txnlog-{name}.txt"),
            tool(classpath, LOG_TOOL, &[&path(name)])?,
        )?;
    }
    for name in &snapshots {
        for (tag, flag) in [("", None), ("-d", Some("-d")), ("-json", Some("-json"))] {
            let file = path(name);
            let args: Vec<&str> = flag.into_iter().chain([file.as_str()]).collect();
            write(
                format!("snapshot{tag}-{name}.txt"),
                tool(classpath, SNAP_TOOL, &args)?,
            )?;
        }
    }
    let first = &snapshots[0];
    let last = &snapshots[snapshots.len() - 1];
    let before = &snapshots[snapshots.len() - 2];
    for (left, right) in [(first, last), (before, last)] {
        for (tag, debug) in [("", false), ("-d", true)] {
            let (l, r) = (path(left), path(right));
            let mut args = vec!["-l", &l, "-r", &r, "-b", "0", "-n", "0"];
            if debug {
                args.push("-d");
            }
            write(
                format!("compare{tag}-{left}-{right}.txt"),
                tool(classpath, COMPARER, &args)?,
            )?;
        }
    }

    // Chop the log with the most entries at its middle zxid, in a copy.
    let scratch = std::env::temp_dir().join(format!("xtask-record-tools-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let (log, zxid) = middle_of_longest(version_dir, &logs)?;
    let copy = scratch.join(&log);
    std::fs::copy(version_dir.join(&log), &copy)?;
    let zxid_arg = format!("0x{zxid:x}");
    let out = tool(
        classpath,
        LOG_TOOL,
        &["-c", "-z", &zxid_arg, &copy.display().to_string()],
    )?;
    write(format!("chop-{log}-{zxid_arg}.txt"), out)?;
    let chopped = scratch.join(format!("{log}.chopped{zxid}"));
    std::fs::copy(
        &chopped,
        expected.join(format!("chop-{log}-{zxid_arg}.bin")),
    )?;

    // Purge a copy of the folder, keeping 3 snapshots.
    let purge_dir = scratch.join("purge");
    std::fs::create_dir_all(purge_dir.join("version-2"))?;
    for entry in std::fs::read_dir(version_dir)? {
        let entry = entry?;
        std::fs::copy(
            entry.path(),
            purge_dir.join("version-2").join(entry.file_name()),
        )?;
    }
    let out = tool(
        classpath,
        "org.apache.zookeeper.server.PurgeTxnLog",
        &[&purge_dir.display().to_string(), "-n", "3"],
    )?;
    let mut lines: Vec<String> = out
        .lines()
        .map(|l| l.replace(&purge_dir.display().to_string(), "<dir>"))
        .collect();
    lines.sort();
    let mut left: Vec<String> = std::fs::read_dir(purge_dir.join("version-2"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    left.sort();
    write(
        "cleanup-3.txt".into(),
        format!("{}\nkept: {}\n", lines.join("\n"), left.join(" ")),
    )?;
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

/// The log file with the most entries, and the zxid in the middle of it.
fn middle_of_longest(version_dir: &Path, logs: &[String]) -> Result<(String, i64)> {
    let mut best: Option<(usize, String, i64)> = None;
    for name in logs {
        let parsed = zk_persistence::parse_file(&version_dir.join(name))?;
        let n = parsed.entries.len();
        if n >= 2 && best.as_ref().is_none_or(|(m, _, _)| n > *m) {
            let zxid = parsed.entries[n / 2].zxid();
            best = Some((n, name.clone(), zxid));
        }
    }
    best.map(|(_, name, zxid)| (name, zxid))
        .context("no log with two entries to chop")
}

/// Writes `dir/version-2` with our server: a debug build, `snapCount=10`, small
/// preallocation; a workload with sequential, ephemeral, container and TTL nodes, names
/// whose hashes collide, 30 children under one node, 20 sessions, multis and a quota.
fn write_ours(dir: &Path) -> Result<()> {
    crate::run(crate::cargo().args(["build", "-p", "zk-server"]))?;
    let binary = root().join("target/debug/zk-server");
    let scratch = std::env::temp_dir().join(format!("xtask-ours-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let (cfg, addr) = ServerProc::config(&scratch, "ours")?;
    let mut text = std::fs::read_to_string(&cfg)?;
    text.push_str("snapCount=10\npreAllocSize=16\n");
    std::fs::write(&cfg, text)?;
    {
        // The server stops when dropped, at the end of this block.
        let mut cmd = Command::new(&binary);
        cmd.arg(&cfg).env("NO_COLOR", "1");
        let server = ServerProc::spawn("zk-server", cmd, addr, scratch.join("ours/server.log"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(workload(server.addr))?;
        // Snapshots are taken in the background: give the last one time to land.
        std::thread::sleep(Duration::from_secs(2));
    }
    let from = scratch.join("ours/data/version-2");
    let to = dir.join("version-2");
    if to.exists() {
        std::fs::remove_dir_all(&to)?;
    }
    std::fs::create_dir_all(&to)?;
    for entry in std::fs::read_dir(&from)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("log.") || name.starts_with("snapshot.") {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

async fn workload(addr: std::net::SocketAddr) -> Result<()> {
    let target = addr.to_string();
    let connect = || async {
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(30))
            .connect(&target)
            .await
            .context("connecting")
    };
    let open = &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let client = connect().await?;
    client.create("/app", b"v1", open).await?;
    for name in [
        "Aa",
        "BB",
        "AaAa",
        "BBBB",
        "AaBB",
        "BBAa",
        "C#",
        "Bb",
        "caf\u{e9}",
        "q\"uote",
    ] {
        client
            .create(&format!("/app/{name}"), name.as_bytes(), open)
            .await?;
    }
    // A quota on /app, as `setquota -n 100 /app` writes it (stats deliberately stale:
    // ZooKeeper's tools print them recomputed).
    client.create("/zookeeper/quota/app", b"", open).await?;
    client
        .create(
            "/zookeeper/quota/app/zookeeper_limits",
            b"count=100,bytes=-1",
            open,
        )
        .await?;
    client
        .create(
            "/zookeeper/quota/app/zookeeper_stats",
            b"count=999,bytes=999",
            open,
        )
        .await?;
    client.create("/many", b"", open).await?;
    for i in 0..30 {
        client
            .create(&format!("/many/c{i}"), &vec![b'd'; i], open)
            .await?;
    }
    let seq = &zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    for _ in 0..3 {
        client.create("/app/seq-", b"s", seq).await?;
    }
    let container = &zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
    client.create("/jobs", b"", container).await?;
    client.create("/jobs/j1", b"x", open).await?;
    let ttl = &zk::CreateMode::Persistent
        .with_acls(zk::Acls::anyone_all())
        .with_ttl(Duration::from_secs(3600));
    client.create("/ttl", b"t", ttl).await?;
    let mut sessions = Vec::new();
    for i in 0..20 {
        let session = connect().await?;
        let eph = &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        if i % 3 == 0 {
            session.create(&format!("/app/eph-{i}"), b"e", eph).await?;
        }
        sessions.push(session);
    }
    for i in 0..10 {
        client
            .set_data("/app", format!("v{i}").as_bytes(), None)
            .await?;
    }
    let mut writer = client.new_multi_writer();
    writer.add_create("/app/m1", b"1", open)?;
    writer.add_set_data("/app", b"multi", None)?;
    writer.add_delete("/many/c0", None)?;
    writer.commit().await?;
    // A failing multi logs an error txn.
    let mut writer = client.new_multi_writer();
    writer.add_create("/app/m2", b"2", open)?;
    writer.add_delete("/does-not-exist", None)?;
    let _ = writer.commit().await;
    client.delete("/app/Bb", None).await?;
    client.delete("/jobs/j1", None).await?;
    // Closing some sessions deletes their ephemerals (closeSession txns).
    for session in sessions.drain(..10) {
        drop(session);
    }
    for i in 0..10 {
        client.create(&format!("/tail-{i}"), b"t", open).await?;
    }
    Ok(())
}
