//! Builds a tree by replaying Apache ZooKeeper's own txn logs through `DataTree::apply`,
//! checking the tree's digest against the one ZooKeeper logged after every txn, and,
//! when the directory has one, the final tree against ZooKeeper's own dump (`tree.txt`).
//!
//! ```sh
//! cargo run -p zk-datatree --example replay_log                     # tests/reference/basics
//! cargo run -p zk-datatree --example replay_log -- persistence/tests/zk-datadir
//! ```
//!
//! Any data directory whose logs start at zxid 1 will do (ZooKeeper's first snapshot,
//! `snapshot.0`, is the empty tree this starts from). To start from a later snapshot,
//! read it with `zk-persistence` (its `read_datadir` example restores a directory).
//!
//! The log is read here with `zk-jute` alone, to show its layout; `zk-persistence` reads
//! it with checksums, torn-tail handling and errors that name file and offset.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use zk_datatree::{DIGEST_VERSION, DataTree, Transaction};
use zk_jute::txn::{TxnDigest, TxnHeader};
use zk_jute::{Reader, Record, Zxid};

/// One log entry: its header, its txn, and the tree digest ZooKeeper logged after it.
struct Entry {
    header: TxnHeader,
    txn: Transaction,
    digest: Option<TxnDigest>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/basics"));
    let version2 = if dir.join("version-2").is_dir() {
        dir.join("version-2")
    } else {
        dir.clone()
    };
    let logs = log_files(&version2)?;
    match logs.first() {
        Some((1, _)) => {}
        Some((zxid, path)) => {
            return Err(format!(
                "{} starts at zxid {}: the logs before it were purged, start from a snapshot",
                path.display(),
                Zxid(*zxid)
            )
            .into());
        }
        None => return Err(format!("no log.* files in {}", version2.display()).into()),
    }

    let mut tree = DataTree::default();
    let mut by_op: BTreeMap<String, usize> = BTreeMap::new();
    let (mut txns, mut failed, mut triggers, mut checked, mut differ) = (0, 0, 0, 0, 0);
    for (_, path) in &logs {
        for entry in read_log(path)? {
            let applied = tree.apply(&entry.header, &entry.txn);
            txns += 1;
            *by_op
                .entry(format!("{:?}", entry.txn.op_code()))
                .or_default() += 1;
            failed += usize::from(applied.err != 0 || matches!(entry.txn, Transaction::Error(_)));
            triggers += applied.triggers.len();
            if let Some(logged) = entry.digest.filter(|d| d.version == DIGEST_VERSION) {
                checked += 1;
                if logged.tree_digest != tree.digest() as i64 {
                    differ += 1;
                    println!(
                        "digest differs after {}: ZooKeeper logged {:#x}, the tree has {:#x}",
                        Zxid(entry.header.zxid),
                        logged.tree_digest,
                        tree.digest()
                    );
                }
            }
        }
    }

    println!("{}: {} log file(s), {txns} txns", dir.display(), logs.len());
    for (op, n) in &by_op {
        println!("  {op:<16} {n}");
    }
    println!("{failed} failed writes (each still took a zxid), {triggers} watch triggers");
    println!(
        "last zxid {}, {} znodes, {} sessions, digest {:#x}",
        Zxid(tree.last_zxid()),
        tree.node_count(),
        tree.sessions().len(),
        tree.digest()
    );
    println!(
        "tree digest equal to ZooKeeper's after {} of the {checked} txns logged with one",
        checked - differ
    );
    for path in tree.paths_preorder().iter().take(8) {
        let path = if path.is_empty() { "/" } else { path };
        if let Some(node) = tree.node(path) {
            let stat = node.client_stat();
            println!(
                "  {path}  version {} children {} data {:?}",
                stat.version,
                stat.num_children,
                node.data.as_deref().map(String::from_utf8_lossy)
            );
        }
    }

    match std::fs::read_to_string(dir.join("tree.txt")) {
        Ok(expected) if expected == tree.dump() => {
            println!("the tree equals ZooKeeper's tree.txt, node by node");
        }
        Ok(_) => return Err("the tree differs from ZooKeeper's tree.txt".into()),
        Err(_) => println!("(no tree.txt next to version-2 to compare with)"),
    }
    Ok(())
}

/// The `log.<zxid>` files of `dir`, by first zxid.
fn log_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>, Box<dyn Error>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        let zxid = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("log."))
            .and_then(|hex| i64::from_str_radix(hex, 16).ok());
        if let Some(zxid) = zxid {
            files.push((zxid, path));
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a ZooKeeper txn log: a file header (`ZKLG`, version 2, dbid), then entries of
/// `checksum: long, record: buffer, 0x42`, until a zero length (preallocated space). A
/// record is a `TxnHeader`, the txn its type names, and (3.6+) the tree's digest after it.
fn read_log(path: &Path) -> Result<Vec<Entry>, Box<dyn Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = Reader::new(Bytes::from(bytes));
    let (magic, version, _dbid) = (r.read_i32()?, r.read_i32()?, r.read_i64()?);
    if (magic, version) != (i32::from_be_bytes(*b"ZKLG"), 2) {
        return Err(format!("{}: not a version 2 txn log", path.display()).into());
    }
    let mut entries = Vec::new();
    while r.remaining() >= 12 {
        let _checksum = r.read_i64()?;
        let Some(record) = r.read_buffer()?.filter(|b| !b.is_empty()) else {
            break; // preallocated zeros: the end of the log
        };
        // The end-of-record marker, 0x42 ('B'), read as jute reads it: a boolean.
        if !r.read_bool()? {
            return Err(format!("{}: no end-of-record marker", path.display()).into());
        }
        let mut body = Reader::new(record);
        let header = TxnHeader::decode(&mut body)?;
        let txn = Transaction::read(header.r#type, &mut body)?;
        let digest = if body.remaining() > 0 {
            Some(TxnDigest::decode(&mut body)?)
        } else {
            None
        };
        body.finish()?;
        entries.push(Entry {
            header,
            txn,
            digest,
        });
    }
    Ok(entries)
}
