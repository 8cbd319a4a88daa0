//! `zk-tools digest <dataDir> [<dataLogDir>]`: replays a data directory from its oldest
//! snapshot through every log file, checking each digest the files record: a snapshot's
//! own (against the tree it holds, or, for a fuzzy snapshot, against the replayed tree at
//! the digest's zxid) and each txn's (against the tree right after it), as ZooKeeper's
//! `DataTree.compareDigest` does while it loads. Stops at the first mismatch, naming the
//! file, the zxid and both digests. One log file and at most two trees are held at once.

use std::path::{Path, PathBuf};

use zk_datatree::{DIGEST_VERSION, DataTree, Transaction, TreeOptions};
use zk_jute::txn::TxnDigest;
use zk_jute::{Reader, Record};
use zk_persistence::{ZxidDigest, log_files, parse_file, read_snapshot, snapshot_files};

use crate::progress::Progress;

const USAGE: &str = "usage: zk-tools digest <dataDir> [<dataLogDir>]\n  \
    dataDir and dataLogDir as in zoo.cfg (their version-2/ is read), or version-2/ itself";

/// The folder that holds the files: `dir/version-2` when there is one, else `dir`.
fn files_dir(dir: &Path) -> PathBuf {
    let versioned = dir.join(zk_persistence::VERSION_DIR);
    if versioned.is_dir() {
        versioned
    } else {
        dir.to_owned()
    }
}

pub(crate) fn main(args: &[String]) -> u8 {
    let (snap_dir, log_dir) = match args {
        [data] => (files_dir(Path::new(data)), files_dir(Path::new(data))),
        [data, log] => (files_dir(Path::new(data)), files_dir(Path::new(log))),
        _ => {
            eprintln!("{USAGE}");
            return 2;
        }
    };
    match check(&snap_dir, &log_dir) {
        Ok(Outcome::Consistent) => 0,
        Ok(Outcome::Mismatch) => 1,
        Err(message) => {
            eprintln!("zk-tools digest: {message}");
            2
        }
    }
}

/// What a check found.
enum Outcome {
    Consistent,
    Mismatch,
}

/// A snapshot's name zxid and the digest it records.
struct Recorded {
    file: PathBuf,
    zxid: i64,
    digest: Option<ZxidDigest>,
}

fn load(path: &Path) -> Result<(DataTree, Recorded), String> {
    let snapshot = read_snapshot(path, |r, sessions| {
        let mut tree = DataTree::deserialize(r, TreeOptions::default(), |_| {})?;
        tree.set_sessions(sessions.clone());
        Ok::<_, zk_datatree::SnapshotError>(tree)
    })
    .map_err(|e| e.to_string())?;
    let mut tree = snapshot.tree;
    tree.set_last_zxid(snapshot.zxid);
    Ok((
        tree,
        Recorded {
            file: snapshot.path,
            zxid: snapshot.zxid,
            digest: snapshot.digest,
        },
    ))
}

fn name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn check(snap_dir: &Path, log_dir: &Path) -> Result<Outcome, String> {
    let mut snapshots = snapshot_files(snap_dir).map_err(|e| e.to_string())?;
    snapshots.reverse();
    snapshots.dedup_by_key(|(zxid, _)| *zxid);
    let logs = log_files(log_dir).map_err(|e| e.to_string())?;
    if snapshots.is_empty() && logs.is_empty() {
        return Err(format!(
            "no snapshot.* or log.* files in {} or {}",
            snap_dir.display(),
            log_dir.display()
        ));
    }

    // Every snapshot on its own: a digest taken at the zxid in its name must be the tree's.
    let mut pending: Vec<Recorded> = Vec::new();
    let mut base: Option<(DataTree, Recorded)> = None;
    let mut compared_snapshots = 0_u64;
    for (_, path) in &snapshots {
        let (tree, recorded) = load(path)?;
        let summary = format!(
            "{}: {} znodes, {} sessions",
            name(&recorded.file),
            tree.node_count(),
            tree.sessions().len()
        );
        match recorded.digest {
            Some(d) if d.version != DIGEST_VERSION => {
                println!("{summary}, digest version {} not checked", d.version);
            }
            Some(d) if d.zxid == recorded.zxid => {
                compared_snapshots += 1;
                if d.digest != tree.digest() as i64 {
                    println!(
                        "{summary}: digest mismatch at zxid {:#x}: the file records {}, its tree has {}",
                        d.zxid,
                        d.digest,
                        tree.digest() as i64
                    );
                    return Ok(Outcome::Mismatch);
                }
                println!("{summary}, digest at {:#x} matches", d.zxid);
            }
            Some(d) => {
                println!(
                    "{summary}, fuzzy: its digest at {:#x} is checked by the replay",
                    d.zxid
                );
                pending.push(Recorded {
                    file: recorded.file.clone(),
                    zxid: recorded.zxid,
                    digest: recorded.digest,
                });
            }
            None => println!("{summary}, no digest"),
        }
        if base.is_none() {
            base = Some((tree, recorded));
        }
    }

    let (mut tree, base) = match base {
        Some((tree, recorded)) => (tree, Some(recorded)),
        None => (DataTree::new(TreeOptions::default()), None),
    };
    let mut last = base.as_ref().map_or(0, |b| b.zxid);
    // The window in which the base snapshot's tree is no one zxid's state.
    let window_end = base
        .as_ref()
        .and_then(|b| b.digest)
        .filter(|d| d.zxid > last)
        .map_or(last, |d| d.zxid);
    let first = last;
    let (mut replayed, mut compared, mut without) = (0_u64, 0_u64, 0_u64);
    let total_bytes: u64 = logs
        .iter()
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut progress = Progress::new("log bytes", total_bytes);
    let mut read_bytes = 0_u64;
    for (index, (_, path)) in logs.iter().enumerate() {
        // A file that ends at or before the base's zxid needs no reading.
        if logs
            .get(index + 1)
            .is_some_and(|(next, _)| *next <= last + 1)
        {
            continue;
        }
        let parsed = parse_file(path).map_err(|e| e.to_string())?;
        let (mut file_txns, mut file_compared) = (0_u64, 0_u64);
        for entry in &parsed.entries {
            let zxid = entry.zxid();
            if zxid <= last {
                continue;
            }
            let mut body = Reader::new(entry.body.clone());
            let txn = Transaction::read(entry.header.r#type, &mut body)
                .map_err(|e| format!("{} zxid {zxid:#x}: {e}", path.display()))?;
            tree.apply(&entry.header, &txn);
            tree.set_last_zxid(zxid);
            last = zxid;
            replayed += 1;
            file_txns += 1;
            let actual = tree.digest() as i64;
            if zxid > window_end && body.remaining() > 0 {
                let logged = TxnDigest::decode(&mut body)
                    .map_err(|e| format!("{} zxid {zxid:#x}: its digest: {e}", path.display()))?;
                if logged.version == DIGEST_VERSION {
                    compared += 1;
                    file_compared += 1;
                    if logged.tree_digest != actual {
                        println!(
                            "{}: digest mismatch at zxid {zxid:#x}: the log records {}, the replayed tree has {actual}",
                            name(path),
                            logged.tree_digest
                        );
                        return Ok(Outcome::Mismatch);
                    }
                } else {
                    without += 1;
                }
            } else if zxid > window_end {
                without += 1;
            }
            for snapshot in pending.iter().chain(base.iter()) {
                let Some(d) = snapshot
                    .digest
                    .filter(|d| d.zxid == zxid && d.zxid != snapshot.zxid)
                else {
                    continue;
                };
                compared_snapshots += 1;
                if d.digest != actual {
                    println!(
                        "{}: digest mismatch at zxid {zxid:#x}: the file records {}, the replayed tree has {actual}",
                        name(&snapshot.file),
                        d.digest
                    );
                    return Ok(Outcome::Mismatch);
                }
                println!(
                    "{}: digest at {zxid:#x} matches the replay",
                    name(&snapshot.file)
                );
            }
        }
        println!(
            "{}: {file_txns} txns replayed, {file_compared} digests match",
            name(path)
        );
        read_bytes += std::fs::metadata(path).map_or(0, |m| m.len());
        progress.at(read_bytes);
    }
    progress.done();
    let unreached: Vec<String> = pending
        .iter()
        .chain(base.iter())
        .filter_map(|s| s.digest.filter(|d| d.zxid > last).map(|d| (s, d)))
        .map(|(s, d)| format!("{} (digest at {:#x})", name(&s.file), d.zxid))
        .collect();
    if !unreached.is_empty() {
        println!(
            "the logs end at {last:#x}, before the digest of {}",
            unreached.join(", ")
        );
        return Ok(Outcome::Mismatch);
    }
    println!(
        "consistent: {} snapshots, {replayed} txns replayed ({:#x} to {last:#x}), \
         {compared} logged digests and {compared_snapshots} snapshot digests match, \
         {without} txns without a digest; the tree holds {} znodes, digest {}",
        snapshots.len(),
        first,
        tree.node_count(),
        tree.digest() as i64
    );
    Ok(Outcome::Consistent)
}
