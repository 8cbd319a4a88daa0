//! Apache ZooKeeper 3.8.0's own txn logs and snapshots (recorded by `cargo xtask
//! record-tree` into `tests/reference/<scenario>/`) replayed through `DataTree::apply`: after
//! every txn our digest equals the one ZooKeeper logged with it, and the final tree equals
//! the tree ZooKeeper reported, node by node (data, every stat field, ACL).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use zk_datatree::{DataTree, Transaction, TreeOptions};
use zk_jute::txn::{TxnDigest, TxnHeader};
use zk_jute::{Reader, Record};

fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("tree.txt").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 5, "recorded scenarios: {dirs:?}");
    dirs
}

/// The files in `version-2` whose names start with `prefix`, in zxid order.
fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(dir.join("version-2"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let zxid = i64::from_str_radix(name.strip_prefix(prefix)?, 16).ok()?;
            Some((zxid, p))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// One txn log entry: header, body, and the digest ZooKeeper logged after applying it.
struct Entry {
    header: TxnHeader,
    txn: Transaction,
    digest: Option<TxnDigest>,
}

/// Reads a ZooKeeper txn log: a 16-byte file header, then entries of
/// `checksum: long, length: int, bytes, 0x42`, until a zero length (preallocated space).
fn read_log(path: &Path) -> Vec<Entry> {
    let mut r = Reader::new(Bytes::from(std::fs::read(path).unwrap()));
    let (magic, version) = (i32::decode(&mut r).unwrap(), i32::decode(&mut r).unwrap());
    assert_eq!((magic, version), (i32::from_be_bytes(*b"ZKLG"), 2));
    let _dbid = i64::decode(&mut r).unwrap();
    let mut entries = Vec::new();
    while r.remaining() >= 12 {
        let _checksum = i64::decode(&mut r).unwrap();
        let Some(record) = r.read_buffer().unwrap().filter(|b| !b.is_empty()) else {
            break;
        };
        assert_eq!(bool::decode(&mut r), Ok(true), "end-of-record marker 0x42");
        let mut body = Reader::new(record);
        let header = TxnHeader::decode(&mut body).unwrap();
        let txn = Transaction::read(header.r#type, &mut body).unwrap();
        let digest = (body.remaining() > 0).then(|| TxnDigest::decode(&mut body).unwrap());
        body.finish().unwrap();
        entries.push(Entry {
            header,
            txn,
            digest,
        });
    }
    entries
}

/// Reads ZooKeeper's initial `snapshot.0`: header, session table, then the tree body.
fn read_snapshot(path: &Path) -> DataTree {
    let mut r = Reader::new(Bytes::from(std::fs::read(path).unwrap()));
    let (magic, version) = (i32::decode(&mut r).unwrap(), i32::decode(&mut r).unwrap());
    assert_eq!((magic, version), (i32::from_be_bytes(*b"ZKSN"), 2));
    let _dbid = i64::decode(&mut r).unwrap();
    let sessions = i32::decode(&mut r).unwrap();
    for _ in 0..sessions {
        let _id_and_timeout = (i64::decode(&mut r).unwrap(), i32::decode(&mut r).unwrap());
    }
    DataTree::deserialize(&mut r, TreeOptions::default(), |_| {}).unwrap()
}

/// Txns whose logged digest ZooKeeper 3.8.0 itself gets wrong. Its preparation computes a
/// new node's digest with the owner the create *flags* imply, while applying uses the owner
/// the *opcode* implies; the two differ for `createContainer` with non-container flags and
/// for `create`/`create2` with container flags (scenario `containers_ttl`, lines 54-57). Its
/// own tree then disagrees with its log; ours agrees with its tree (checked in full below).
fn zookeeper_disagrees_with_itself(dir: &Path, zxid: i64) -> bool {
    dir.ends_with("containers_ttl") && (0x1b..=0x1e).contains(&zxid)
}

#[test]
fn zookeeper_snapshots_load_to_the_initial_tree() {
    for dir in scenarios() {
        let snapshot = files(&dir, "snapshot.")
            .into_iter()
            .next()
            .expect("a snapshot");
        let loaded = read_snapshot(&snapshot);
        let fresh = DataTree::default();
        assert_eq!(loaded.dump(), fresh.dump(), "{}", snapshot.display());
    }
}

#[test]
fn replaying_zookeeper_logs_gives_zookeepers_tree_and_digests() {
    for dir in scenarios() {
        let mut tree = DataTree::default();
        let mut applied = 0;
        for log in files(&dir, "log.") {
            for entry in read_log(&log) {
                tree.apply(&entry.header, &entry.txn);
                applied += 1;
                if let Some(digest) = entry.digest {
                    if zookeeper_disagrees_with_itself(&dir, entry.header.zxid) {
                        continue;
                    }
                    assert_eq!(
                        tree.digest() as i64,
                        digest.tree_digest,
                        "{}: digest after zxid {:#x} ({:?})",
                        dir.display(),
                        entry.header.zxid,
                        entry.txn.op_code()
                    );
                }
            }
        }
        assert!(applied > 10, "{}: only {applied} txns", dir.display());
        let expected = std::fs::read_to_string(dir.join("tree.txt")).unwrap();
        assert_eq!(tree.dump(), expected, "{}", dir.display());
    }
}
