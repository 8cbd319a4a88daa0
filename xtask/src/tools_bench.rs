//! `cargo xtask bench tools [--znodes N] [--keep]`: `zk-tools` (release build) against
//! Apache ZooKeeper 3.8.0's own tools on the same large files: a data directory of N
//! znodes (1,000,000 by default) made here with `zk-datatree` and `zk-persistence` (the
//! files ZooKeeper reads; every create logged with its digest, a snapshot at half and at
//! the end). Times each tool's whole run (stdout to /dev/null) and its peak memory (GNU
//! time's maximum RSS, when `/usr/bin/time` is there); writes a table to stdout and to
//! `target/bench-tools.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use zk_datatree::{DIGEST_VERSION, DataTree, Transaction, TreeOptions};
use zk_jute::data::{Acl, Id};
use zk_jute::txn::{CreateTxn, TxnDigest, TxnHeader};
use zk_persistence::{FileTxnLog, LogEntry, LogOptions, TxnLog, ZxidDigest};

use crate::{QUIET_LOGGING_JAR, java, root, with_optional_jar, zookeeper_classpath};

pub(crate) fn run(rest: &[String]) -> Result<()> {
    let mut znodes = 1_000_000_u64;
    let mut keep = false;
    let mut args = rest.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--znodes" => {
                znodes = args
                    .next()
                    .context("--znodes needs a number")?
                    .replace('_', "")
                    .parse()?
            }
            "--keep" => keep = true,
            other => bail!("unknown option `{other}` (bench tools [--znodes N] [--keep])"),
        }
    }
    crate::run(crate::cargo().args(["build", "--release", "-p", "zk-cli", "--bin", "zk-tools"]))?;
    let ours = root().join("target/release/zk-tools");
    let classpath = with_optional_jar(zookeeper_classpath()?, QUIET_LOGGING_JAR);
    let dir = root().join("target/bench-tools");
    let _ = std::fs::remove_dir_all(&dir);
    let version_dir = dir.join("version-2");
    let (half, last) = generate(&version_dir, znodes)?;
    let log = version_dir.join("log.1");
    let log_mb = std::fs::metadata(&log)?.len() as f64 / (1 << 20) as f64;
    let snap = |zxid: i64| {
        version_dir
            .join(format!("snapshot.{zxid:x}"))
            .display()
            .to_string()
    };
    let (half, last) = (snap(half), snap(last));
    let log = log.display().to_string();

    let cases: Vec<(String, Vec<String>, &str, Vec<String>)> = vec![
        (
            format!("txn log dump ({znodes} txns, a {log_mb:.0} MiB file)"),
            vec!["txnlog".into(), log.clone()],
            "org.apache.zookeeper.server.persistence.TxnLogToolkit",
            vec![log.clone()],
        ),
        (
            format!("snapshot -d ({znodes} znodes)"),
            vec!["snapshot".into(), "-d".into(), last.clone()],
            "org.apache.zookeeper.server.SnapshotFormatter",
            vec!["-d".into(), last.clone()],
        ),
        (
            format!("snapshot -json ({znodes} znodes)"),
            vec!["snapshot".into(), "-json".into(), last.clone()],
            "org.apache.zookeeper.server.SnapshotFormatter",
            vec!["-json".into(), last.clone()],
        ),
        (
            "compare (half and all)".into(),
            ["compare", "-l", &half, "-r", &last, "-b", "0", "-n", "0"]
                .map(String::from)
                .to_vec(),
            "org.apache.zookeeper.server.SnapshotComparer",
            ["-l", &half, "-r", &last, "-b", "0", "-n", "0"]
                .map(String::from)
                .to_vec(),
        ),
    ];
    let mut rows = Vec::new();
    for (name, our_args, class, their_args) in &cases {
        eprintln!("{name}: zk-tools ...");
        let mut cmd = Command::new(&ours);
        cmd.args(our_args);
        let mine = measure(cmd)?;
        eprintln!("{name}: ZooKeeper ...");
        let mut cmd = java(&classpath);
        cmd.arg("-Xmx8g").arg(class).args(their_args);
        let theirs = measure(cmd)?;
        rows.push((name.clone(), mine, theirs));
    }
    eprintln!("digest check: zk-tools ...");
    let mut cmd = Command::new(&ours);
    cmd.args(["digest".into(), dir.display().to_string()]);
    let digest = measure(cmd)?;

    let mut table = String::from(
        "| tool | zk-tools | ZooKeeper 3.8.0 | speed-up | zk-tools max RSS | ZooKeeper max RSS |\n|---|---|---|---|---|---|\n",
    );
    let rss = |kb: Option<u64>| kb.map_or("-".to_owned(), |kb| format!("{} MiB", kb / 1024));
    for (name, mine, theirs) in &rows {
        table.push_str(&format!(
            "| {name} | {:.2} s | {:.2} s | {:.1}x | {} | {} |\n",
            mine.0,
            theirs.0,
            theirs.0 / mine.0,
            rss(mine.1),
            rss(theirs.1)
        ));
    }
    table.push_str(&format!(
        "| digest check (replay of {znodes} txns, 3 snapshots) | {:.2} s | (no such tool) | | {} | |\n",
        digest.0,
        rss(digest.1)
    ));
    println!("{table}");
    let report = root().join("target/bench-tools.md");
    std::fs::write(&report, &table)?;
    eprintln!("wrote {}", report.display());
    if !keep {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// Runs a command with its output thrown away; (seconds, peak RSS in KiB if known).
fn measure(cmd: Command) -> Result<(f64, Option<u64>)> {
    let rss_file = std::env::temp_dir().join(format!("xtask-rss-{}", std::process::id()));
    let timed = Path::new("/usr/bin/time").exists();
    let mut run = if timed {
        let mut wrapped = Command::new("/usr/bin/time");
        wrapped
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_file)
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(v) => wrapped.env(key, v),
                None => wrapped.env_remove(key),
            };
        }
        wrapped
    } else {
        cmd
    };
    let started = Instant::now();
    let status = run
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running a tool")?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{run:?} failed with {status}");
    }
    let rss = timed
        .then(|| std::fs::read_to_string(&rss_file).ok())
        .flatten()
        .and_then(|text| text.trim().lines().last()?.trim().parse().ok());
    let _ = std::fs::remove_file(&rss_file);
    Ok((seconds, rss))
}

/// Writes `log.1` (one create per znode, each with its digest) and snapshots at zxid 0,
/// at half the znodes and at all of them. Returns the zxids of the last two.
fn generate(dir: &Path, znodes: u64) -> Result<(i64, i64)> {
    let options = TreeOptions::default();
    let mut tree = DataTree::new(options);
    let snapshot = |tree: &DataTree, zxid: i64| -> Result<PathBuf> {
        let digest = ZxidDigest {
            zxid,
            version: DIGEST_VERSION,
            digest: tree.digest() as i64,
        };
        Ok(zk_persistence::write_snapshot(
            dir,
            zxid,
            &BTreeMap::new(),
            Some(digest),
            |w| tree.write_body(w),
        )?)
    };
    std::fs::create_dir_all(dir)?;
    snapshot(&tree, 0)?;
    let mut log = FileTxnLog::open(dir, LogOptions::default())?;
    let acl = vec![Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }];
    let fanout = 1000_u64;
    let started = Instant::now();
    let half = (znodes / 2) as i64;
    let mut zxid = 0_i64;
    let mut created = 0_u64;
    let mut parent = 0_u64;
    while created < znodes {
        // Parents /p<k> of 1,000 children each, then the children.
        let path = if created % (fanout + 1) == 0 {
            parent = created / (fanout + 1);
            format!("/p{parent}")
        } else {
            format!("/p{parent}/node-{:010}", created)
        };
        zxid += 1;
        let txn = CreateTxn {
            path,
            data: Some(bytes::Bytes::from_static(&[b'x'; 100])),
            acl: Some(acl.clone()),
            ephemeral: false,
            parent_c_version: 0,
        };
        let header = TxnHeader {
            client_id: 0x1000_0000_0000_0001,
            cxid: zxid as i32,
            zxid,
            time: 1_700_000_000_000 + zxid,
            r#type: 15,
        };
        let body = zk_jute::to_bytes(&txn);
        tree.apply(&header, &Transaction::Create2(txn));
        let digest = TxnDigest {
            version: DIGEST_VERSION,
            tree_digest: tree.digest() as i64,
        };
        log.append(&LogEntry::new(header, &body, Some(&digest)))?;
        created += 1;
        if zxid == half {
            log.commit()?;
            tree.set_last_zxid(zxid);
            snapshot(&tree, zxid)?;
        }
        if created % 100_000 == 0 {
            log.commit()?;
            eprintln!(
                "generated {created} of {znodes} znodes ({:.0?})",
                started.elapsed()
            );
        }
    }
    log.commit()?;
    tree.set_last_zxid(zxid);
    snapshot(&tree, zxid)?;
    Ok((half, zxid))
}
