//! Reads an Apache ZooKeeper data directory, without changing it: every snapshot (seals
//! checked, tree body parsed by `zk-datatree`), every txn log file (checksums checked),
//! the epoch files of an ensemble's member, then restores the state a server would start
//! from: the newest valid snapshot with the log after it replayed, each txn's logged
//! digest compared with the tree's.
//!
//! ```sh
//! cargo run -p zk-persistence --example read_datadir                 # tests/zk-datadir
//! cargo run -p zk-persistence --example read_datadir -- /var/lib/zookeeper
//! ```
//!
//! The default, `tests/zk-datadir`, was written by Apache ZooKeeper 3.8.0 itself. A
//! directory a ZooKeeper server is writing to can be read too (a torn last entry is
//! reported, not an error).

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use zk_datatree::{DIGEST_VERSION, DataTree, SnapshotError, Transaction, TreeOptions};
use zk_jute::txn::TxnDigest;
use zk_jute::{OpCode, Reader, Record, Zxid};
use zk_persistence::{
    FileTxnLog, LogEntry, LogOptions, ZxidDigest, log_files, parse_file, read_epoch, read_snapshot,
    restore, snapshot_files,
};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zk-datadir"));
    // ZooKeeper's files live in `<dataDir>/version-2`; accept either.
    let version2 = if dir.join("version-2").is_dir() {
        dir.join("version-2")
    } else {
        dir.clone()
    };
    if !version2.is_dir() {
        return Err(format!("{} is not a directory", version2.display()).into());
    }
    println!("{}", version2.display());

    let mut snapshots = snapshot_files(&version2)?; // newest first
    snapshots.reverse();
    for (zxid, path) in snapshots {
        match read_snapshot(&path, parse_tree) {
            Ok(snapshot) => println!(
                "  snapshot.{zxid:x}: {} znodes, {} sessions, digest {}",
                snapshot.tree.node_count(),
                snapshot.sessions.len(),
                snapshot.digest.map_or("none".to_owned(), |d| format!(
                    "{:#x} at {}",
                    d.digest,
                    Zxid(d.zxid)
                ))
            ),
            // A server skips a damaged snapshot and takes the one before it.
            Err(e) => println!("  snapshot.{zxid:x}: unreadable: {e}"),
        }
    }

    for (first, path) in log_files(&version2)? {
        let parsed = parse_file(&path)?;
        let mut ops = BTreeMap::<String, usize>::new();
        for entry in &parsed.entries {
            let op = OpCode::try_from(entry.header.r#type)
                .map_or_else(|t| format!("type {t}"), |op| format!("{op:?}"));
            *ops.entry(op).or_default() += 1;
        }
        let last = parsed.entries.last().map_or(first, LogEntry::zxid);
        println!(
            "  log.{first:x}: {} txns, {} to {}{}",
            parsed.entries.len(),
            Zxid(first),
            Zxid(last),
            match parsed.torn_tail {
                0 => String::new(),
                n => format!(", a torn tail of {n} bytes"),
            }
        );
        let ops: Vec<String> = ops.iter().map(|(op, n)| format!("{op} {n}")).collect();
        println!("    {}", ops.join(", "));
    }

    for name in ["acceptedEpoch", "currentEpoch"] {
        if let Some(epoch) = read_epoch(&version2, name)? {
            println!("  {name}: {epoch}");
        }
    }

    // What a server does on start. Opening the log only reads the files it holds; a
    // writer would append to a new one.
    let log = FileTxnLog::open(&version2, LogOptions::default())?;
    let mut digests = (0, 0);
    let restored = restore(
        &version2,
        &log,
        parse_tree,
        DataTree::default,
        |tree, entry, fuzzy| replay(tree, entry, fuzzy, &mut digests),
    )?;
    let tree = &restored.tree;
    println!(
        "restored: {} then {} txns replayed, last zxid {}",
        restored
            .snapshot
            .as_ref()
            .map_or("no snapshot".to_owned(), |s| format!(
                "snapshot.{:x}",
                s.zxid
            )),
        restored.replayed,
        Zxid(restored.last_zxid)
    );
    println!(
        "  {} znodes, {} sessions, digest {:#x}; the digest logged with {} txns checked, {} differ",
        tree.node_count(),
        tree.sessions().len(),
        tree.digest(),
        digests.0,
        digests.1
    );
    if let Ok(expected) = std::fs::read_to_string(dir.join("tree.txt")) {
        if expected != tree.dump() {
            return Err("the restored tree differs from the tree.txt next to version-2".into());
        }
        println!("  equal to tree.txt, the tree ZooKeeper held, node by node");
    }
    Ok(())
}

/// Parses a snapshot's tree body; the session table read before it goes with the tree.
fn parse_tree(r: &mut Reader, sessions: &BTreeMap<i64, i32>) -> Result<DataTree, SnapshotError> {
    let mut tree = DataTree::deserialize(r, TreeOptions::default(), |_| {})?;
    tree.set_sessions(sessions.clone());
    Ok(tree)
}

/// Applies one logged txn, and compares the digest logged with it to the tree's, except
/// inside a fuzzy snapshot's window (`fuzzy`), where the tree is no one zxid's state yet.
fn replay(
    tree: &mut DataTree,
    entry: &LogEntry,
    fuzzy: Option<&ZxidDigest>,
    (checked, differ): &mut (usize, usize),
) -> Result<(), String> {
    let mut body = Reader::new(entry.body.clone());
    let txn = Transaction::read(entry.header.r#type, &mut body).map_err(|e| e.to_string())?;
    tree.apply(&entry.header, &txn);
    if fuzzy.is_none() && body.remaining() > 0 {
        let logged = TxnDigest::decode(&mut body).map_err(|e| e.to_string())?;
        if logged.version == DIGEST_VERSION {
            *checked += 1;
            if logged.tree_digest != tree.digest() as i64 {
                *differ += 1;
            }
        }
    }
    Ok(())
}
